"""The timing protocol and report row every benchmark worker shares (mscomm, gloo, MPI, the peers).

Imports nothing from mscomm's core, so the peers' workers can use it from their own venvs
(see mscomm/bench/peers/run.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any, Callable

import numpy as np

from mscomm.bench.sizes import iterations_for
from mscomm.bench.specs import busbw_factor


def np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class Timer:
    """Times `fn` over repetitions aligned by `barrier`, taking the slowest rank each time."""

    def __init__(self, barrier: Callable[[], Any], max_over_ranks: Callable[[float], float], reps: int) -> None:
        self.barrier, self.max_over_ranks, self.reps = barrier, max_over_ranks, reps

    def measure(self, fn: Callable[[], Any], iters: int, warmup: int) -> list[float]:
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


def gloo_timer(rank: int, size: int, reps: int) -> Timer:
    """Joins the gloo group on the CLI's store (MSCOMM_BENCH_GLOO_PORT) and returns a Timer that
    aligns repetitions with its barrier and takes the slowest rank through its allreduce."""
    import torch
    import torch.distributed as dist

    store = dist.TCPStore("127.0.0.1", int(os.environ["MSCOMM_BENCH_GLOO_PORT"]), size, is_master=(rank == 0))
    dist.init_process_group("gloo", store=store, rank=rank, world_size=size)
    slot = torch.zeros(1, dtype=torch.float64)

    def max_over_ranks(v: float) -> float:
        slot[0] = v
        dist.all_reduce(slot, op=dist.ReduceOp.MAX)
        return float(slot[0])

    return Timer(dist.barrier, max_over_ranks, reps)


def row(collective: str, nbytes: int, count: int, args: argparse.Namespace, nranks: int, times: list[float],
        wrong: int | None) -> dict:
    med = statistics.median(times)
    algbw = nbytes / med / 1e9 if med > 0 else 0.0
    return {
        "bytes": nbytes, "count": count, "dtype": args.dtype, "op": args.op,
        "time_us": med * 1e6, "time_us_min": min(times) * 1e6, "time_us_max": max(times) * 1e6,
        "algbw": algbw, "busbw": algbw * busbw_factor(collective, nranks), "wrong": wrong,
        "times_us": [t * 1e6 for t in times],  # every repetition, so passes can be merged (merge_rows)
    }


def merge_rows(collective: str, nranks: int, parts: list[dict]) -> dict:
    """One row from the same size measured in several passes: the statistics over all repetitions."""
    if any("error" in p for p in parts):
        return next(p for p in parts if "error" in p)
    times = [t / 1e6 for p in parts for t in p["times_us"]]
    first = parts[0]
    wrong = None if any(p["wrong"] is None for p in parts) else sum(p["wrong"] for p in parts)
    args = argparse.Namespace(dtype=first["dtype"], op=first["op"])
    return row(collective, first["bytes"], first["count"], args, nranks, times, wrong)


def iterations(args: argparse.Namespace, nbytes: int) -> int:
    """Calls per repetition: --iters, else by size (iterations_for) capped at --max-iters."""
    if args.iters:
        return args.iters
    cap = getattr(args, "max_iters", None)
    return min(iterations_for(nbytes), cap) if cap else iterations_for(nbytes)


def arguments(prog: str) -> argparse.ArgumentParser:
    """What every benchmark worker (mscomm, MPI, the peers) is told by the CLI."""
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--collective", default="allreduce")
    p.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], required=True)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--op", default="sum")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--max-iters", type=int, default=None)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", required=True)
    return p
