"""One rank of ``mscomm-bench`` (started by the CLI through mscomm-run).

Runs every size through mscomm and, when asked, through torch.distributed's gloo in the same
processes, and writes rank 0's results as JSON. Every repetition starts after a barrier; its time
is the slowest rank's mean time per iteration; the report keeps the median and range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable

import numpy as np

import mscomm
from mscomm.bench.sizes import busbw_factor, iterations_for


def _dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def pattern(count: int, rank: int, dtype: np.dtype) -> np.ndarray:
    """Small integers, so sums over up to 8 ranks are exact in every dtype."""
    return ((np.arange(count) % 5) + rank % 3).astype(dtype)


def expected_sum(count: int, nranks: int, dtype: np.dtype) -> np.ndarray:
    base = np.arange(count) % 5
    return (base * nranks + sum(r % 3 for r in range(nranks))).astype(dtype)


class Timer:
    """Times `fn` over repetitions aligned by `barrier`, taking the slowest rank each time."""

    def __init__(self, barrier: Callable[[], None], max_over_ranks: Callable[[float], float], reps: int) -> None:
        self.barrier, self.max_over_ranks, self.reps = barrier, max_over_ranks, reps

    def measure(self, fn: Callable[[], None], iters: int, warmup: int) -> list[float]:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(self.reps):
            self.barrier()
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            times.append(self.max_over_ranks((time.perf_counter() - t0) / iters))
        return times


def row(nbytes: int, count: int, dtype: str, op: str, nranks: int, times: list[float], wrong: int | None) -> dict:
    med = statistics.median(times)
    algbw = nbytes / med / 1e9 if med > 0 else 0.0
    return {
        "bytes": nbytes, "count": count, "dtype": dtype, "op": op,
        "time_us": med * 1e6, "time_us_min": min(times) * 1e6, "time_us_max": max(times) * 1e6,
        "algbw": algbw, "busbw": algbw * busbw_factor("allreduce", nranks), "wrong": wrong,
    }


def run_mscomm(args: argparse.Namespace, comm: mscomm.Communicator) -> dict:
    dt = _dtype(args.dtype)
    boot = comm.bootstrap

    def max_over_ranks(v: float) -> float:
        return max(float(b.decode()) for b in boot.allgather(repr(v).encode(), comm.timeout))

    timer = Timer(lambda: boot.barrier(comm.timeout), max_over_ranks, args.reps)
    rows: dict[str, list[dict]] = {"out_of_place": [], "in_place": []}
    for nbytes in args.sizes:
        count = nbytes // dt.itemsize
        x, out = pattern(count, comm.rank, dt), np.empty(count, dt)
        iters = iterations_for(nbytes) if args.iters is None else args.iters
        algo = args.algorithm
        t_oop = timer.measure(lambda: mscomm.allreduce(x, args.op, out=out, comm=comm, algorithm=algo), iters, args.warmup)
        wrong = None
        if args.check:
            mscomm.allreduce(x, args.op, out=out, comm=comm, algorithm=algo)
            wrong = int(np.count_nonzero(out != expected_sum(count, comm.size, dt))) if args.op == "sum" else None
        y = x.copy()
        t_ip = timer.measure(lambda: mscomm.allreduce(y, args.op, comm=comm, algorithm=algo), iters, args.warmup)
        rows["out_of_place"].append(row(nbytes, count, args.dtype, args.op, comm.size, t_oop, wrong))
        rows["in_place"].append(row(nbytes, count, args.dtype, args.op, comm.size, t_ip, None))
        if comm.rank == 0 and args.progress:
            print(f"mscomm {nbytes} B done", file=sys.stderr, flush=True)
    from mscomm import _core

    algos = {str(n): _core.allreduce_algorithm(comm._core, n, args.algorithm or "") for n in args.sizes}
    return {"backend": "mscomm", "rows": rows, "algorithms": algos}


def run_gloo(args: argparse.Namespace, rank: int, size: int) -> dict:
    import torch
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", int(os.environ["MSCOMM_BENCH_GLOO_PORT"]), size, is_master=(rank == 0))
    dist.init_process_group("gloo", store=store, rank=rank, world_size=size)
    ops = {"sum": dist.ReduceOp.SUM, "prod": dist.ReduceOp.PRODUCT, "min": dist.ReduceOp.MIN,
           "max": dist.ReduceOp.MAX, "avg": dist.ReduceOp.SUM}
    tdt = getattr(torch, args.dtype)
    slot = torch.zeros(1, dtype=torch.float64)

    def max_over_ranks(v: float) -> float:
        slot[0] = v
        dist.all_reduce(slot, op=dist.ReduceOp.MAX)
        return float(slot[0])

    timer = Timer(dist.barrier, max_over_ranks, args.reps)
    rows = []
    for nbytes in args.sizes:
        count = nbytes // tdt.itemsize
        x = torch.ones(count, dtype=tdt)
        iters = iterations_for(nbytes) if args.iters is None else args.iters
        t = timer.measure(lambda: dist.all_reduce(x, op=ops[args.op]), iters, args.warmup)
        rows.append(row(nbytes, count, args.dtype, args.op, size, t, None))
        if rank == 0 and args.progress:
            print(f"gloo {nbytes} B done", file=sys.stderr, flush=True)
    dist.destroy_process_group()
    return {"backend": "gloo", "rows": {"in_place": rows}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mscomm.bench.worker")
    p.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], required=True)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--op", default="sum")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--check", action="store_true")
    p.add_argument("--algorithm", default=None)
    p.add_argument("--gloo", action="store_true")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    comm = mscomm.init()
    results = [run_mscomm(args, comm)]
    rank, size = comm.rank, comm.size
    if args.gloo:
        results.append(run_gloo(args, rank, size))
    comm.close()
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump({"nranks": size, "results": results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
