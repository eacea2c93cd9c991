"""``mscomm-bench COLLECTIVE -n N``: nccl-tests style tables, with gloo and MPI side by side.

Example::

    mscomm-bench allreduce -n 4 --min 4K --max 64M --check --compare gloo,mpi --json out.json

Times are medians over repetitions of the slowest rank's mean time per iteration; algbw is
bytes / time, busbw applies nccl-tests' factor (2(n-1)/n for allreduce). Ratio columns give the
peer's time divided by mscomm's (in place), so 3.0 means mscomm is three times faster.
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
from typing import Sequence

from mscomm.bench.sizes import human, parse_size, size_list
from mscomm.bench.specs import COLLECTIVES
from mscomm.launcher import run as launch

PEERS = ("gloo", "mpi")

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


def _worker_args(args: argparse.Namespace, sizes: list[int], out: str) -> list[str]:
    a = ["--collective", args.collective, "--sizes", ",".join(map(str, sizes)), "--dtype", args.dtype, "--op", args.op,
         "--warmup", str(args.warmup), "--reps", str(args.reps), "--out", out]
    if args.iters:
        a += ["--iters", str(args.iters)]
    return a


def run_benchmark(args: argparse.Namespace) -> dict:
    sizes = size_list(parse_size(args.min), parse_size(args.max), args.factor)
    peers = [p for p in (args.compare.split(",") if args.compare else []) if p]
    for p in peers:
        if p not in PEERS:
            raise SystemExit(f"mscomm-bench: unknown --compare peer {p!r}; choose from {', '.join(PEERS)}")
    if "gloo" in peers or args.backend == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise SystemExit("mscomm-bench: --compare gloo and --backend torch need torch "
                             "(pip install torch==2.13.0)") from None
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "mscomm.json")
        wargs = _worker_args(args, sizes, out)
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
        if "gloo" in peers:
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
            report = json.load(f)
        if "mpi" in peers:
            mpi_out = os.path.join(tmp, "mpi.json")
            cmd = [_mpiexec(), "-n", str(args.nranks), sys.executable, "-m", "mscomm.bench.mpi_worker",
                   *_worker_args(args, sizes, mpi_out)]
            subprocess.run(cmd, check=True, timeout=args.timeout, env={**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1",
                                                                       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})
            with open(mpi_out) as f:
                report["results"].append(json.load(f))
    report.update(collective=args.collective, dtype=args.dtype, op=args.op, reps=args.reps, backend=args.backend,
                  warning=_oversubscription_warning(args.nranks))
    return report


def format_table(report: dict) -> str:
    res = {r["backend"]: r for r in report["results"]}
    ms = res["mscomm"]
    peers = [b for b in PEERS if b in res]
    allreduce = "in_place" in ms
    lines = [
        f"# mscomm-bench {report['collective']}{' (through torch.distributed)' if report.get('backend') == 'torch' else ''}: "
        f"{report['nranks']} ranks, {report['dtype']} {report['op']}, "
        f"median of {report['reps']} repetitions (time = slowest rank; x-peer = peer time / mscomm time)",
    ]
    head = (f"# {'size':>8} {'count':>10} {'type':>8} {'redop':>5}  {'time(us)':>9} {'algbw':>6} {'busbw':>6} "
            f"{'#wrong':>6}")
    if allreduce:
        head += f"  {'inplace':>9} {'algbw':>6} {'busbw':>6} {'#wrong':>6}"
    head += f" {'algo':>13}"
    head += "".join(f"  {p + '(us)':>10} {'x-' + p:>7}" for p in peers)
    lines.append(head)
    algos = ms.get("algorithms", {})
    for i, o in enumerate(ms["rows"]):
        line = (f"  {human(o['bytes']):>8} {o['count']:>10} {o['dtype']:>8} {o['op']:>5}  {o['time_us']:9.1f} "
                f"{o['algbw']:6.2f} {o['busbw']:6.2f} {_wrong(o):>6}")
        if allreduce:
            ip = ms["in_place"][i]
            line += f"  {ip['time_us']:9.1f} {ip['algbw']:6.2f} {ip['busbw']:6.2f} {_wrong(ip):>6}"
        line += f" {algos.get(str(o['bytes']), ''):>13}"
        for p in peers:
            pr = res[p]["rows"][i]
            if "error" in pr:
                line += f"  {'n/a':>10} {'':>7}"
            else:
                line += f"  {pr['time_us']:10.1f} {pr['time_us'] / o['time_us']:7.2f}"
        lines.append(line)
    busbw = [o["busbw"] for o in ms["rows"]]
    lines.append(f"# Out of bounds values : {sum(o['wrong'] or 0 for o in ms['rows'])} "
                 f"{'OK' if all(not o['wrong'] for o in ms['rows']) else 'WRONG'}")
    lines.append(f"# Avg bus bandwidth    : {sum(busbw) / max(1, len(busbw)):.4f} GB/s (mscomm, out of place)")
    for p in peers:
        ok = [r["busbw"] for r in res[p]["rows"] if "error" not in r]
        if ok:
            lines.append(f"# Avg bus bandwidth    : {sum(ok) / len(ok):.4f} GB/s ({p})")
    if report.get("warning"):
        lines.append(report["warning"])
    return "\n".join(lines)


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
    p.add_argument("--compare", default="", help="comma-separated peers to run in the same session: gloo,mpi")
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
