"""One rank of ``mscomm-bench`` (started by the CLI through mscomm-run).

Runs every size through mscomm and, when asked, through torch.distributed's gloo in the same
processes, and writes rank 0's results as JSON. Every repetition starts after a barrier; its time
is the slowest rank's mean time per iteration; the report keeps the median and range.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

import mscomm
from mscomm.bench.specs import buffers, mscomm_call, torch_call
from mscomm.bench.timing import Timer, arguments, gloo_timer, iterations, np_dtype, row


def count_wrong(collective: str, b: Any, in_place: bool = False) -> int | None:
    """Elements that differ from the expected result (torch's allreduce and reduce work in place)."""
    got = b.x if collective == "broadcast" or (in_place and collective in ("allreduce", "reduce")) else b.out
    if b.expected is None:
        return 0
    return int(np.count_nonzero(got != b.expected))


def chosen_algorithm(args: argparse.Namespace, comm: mscomm.Communicator, b: Any, y: np.ndarray) -> str:
    """The row of the selection table the benchmarked call takes (as the call itself would choose)."""
    coll = {"sendrecv": None}.get(args.collective, args.collective)
    if coll is None:
        return ""
    x, out = (b.x, None) if coll == "broadcast" else (None if coll == "scatter" and comm.rank != 0 else b.x, b.out)
    if coll == "barrier":
        x, out = None, None

    def pick(x: Any, out: Any) -> str:
        rows = mscomm.algorithms(coll, x, out=out, comm=comm, algorithm=args.algorithm)
        return next((r.name for r in rows if r.chosen), "-")

    names = [pick(x, out)]
    if coll == "allreduce":
        names.append(pick(y, None))
    return names[0] if len(set(names)) == 1 else "/".join(names)


def _own_pages(a: np.ndarray) -> np.ndarray:
    copy = mscomm.empty(a.shape, a.dtype)
    copy[...] = a
    return copy


def run_mscomm(args: argparse.Namespace, comm: mscomm.Communicator) -> dict:
    dt = np_dtype(args.dtype)
    boot = comm.bootstrap

    def max_over_ranks(v: float) -> float:
        return max(float(x.decode()) for x in boot.allgather(repr(v).encode(), comm.timeout))

    timer = Timer(lambda: boot.barrier(comm.timeout), max_over_ranks, args.reps)
    if args.plan:  # the executor runs it, selected by name like any algorithm
        args.algorithm = comm.load_plan(args.plan).name
    rows: list[dict] = []
    inplace: list[dict] = []
    algorithms: dict[str, str] = {}  # by size: the selection table's choice ("out of place/in place" if they differ)
    for nbytes in args.sizes:
        b = buffers(args.collective, nbytes, comm.rank, comm.size, dt)
        y = b.x.copy()  # the in-place allreduce's buffer
        regs = []
        if args.register:  # on pages of their own, so all three can be registered
            b.x, b.out, y = (_own_pages(a) for a in (b.x, b.out, y))
            regs = [comm.register(a) for a in (b.x, b.out, y) if a.size]
        iters = iterations(args, nbytes)
        call = mscomm_call(args.collective, comm, b, args.op, args.algorithm)
        algorithms[str(nbytes)] = chosen_algorithm(args, comm, b, y)
        wrong = None
        if args.check:
            if args.collective == "broadcast" and comm.rank != 0:
                b.x[:] = 0
            call()
            wrong = count_wrong(args.collective, b) if args.op == "sum" else None
        times = timer.measure(call, iters, args.warmup)
        rows.append(row(args.collective, nbytes, b.x.size, args, comm.size, times, wrong))
        if args.collective == "allreduce":  # also in place, as nccl-tests reports
            wrong_ip = None
            if args.check:
                mscomm.allreduce(y, args.op, comm=comm, algorithm=args.algorithm)
                wrong_ip = int(np.count_nonzero(y != b.expected)) if args.op == "sum" else None
                y[:] = b.x
            t = timer.measure(lambda: mscomm.allreduce(y, args.op, comm=comm, algorithm=args.algorithm), iters,
                              args.warmup)
            inplace.append(row(args.collective, nbytes, b.x.size, args, comm.size, t, wrong_ip))
        for reg in regs:
            reg.deregister()
        if comm.rank == 0 and args.progress:
            print(f"mscomm {nbytes} B done", file=sys.stderr, flush=True)
    result = {"backend": "mscomm", "rows": rows}
    if inplace:
        result["in_place"] = inplace
    result["algorithms"] = algorithms
    return result


def run_torch(args: argparse.Namespace, rank: int, size: int, backends: list[str]) -> list[dict]:
    """Each backend in `backends` ("gloo", "mscomm") measured through torch.distributed, in one run."""
    import torch
    import torch.distributed as dist

    if "mscomm" in backends:
        import mscomm.torch  # noqa: F401 - registers the backend
    timer = gloo_timer(rank, size, args.reps)
    dt = np_dtype(args.dtype)
    results = []
    for backend in backends:
        group = None if backend == "gloo" else dist.new_group(backend=backend)
        rows = []
        for nbytes in args.sizes:
            b = buffers(args.collective, nbytes, rank, size, dt)
            iters = iterations(args, nbytes)
            regs = []
            if args.register and backend == "mscomm":  # as in run_mscomm, through the group
                from mscomm.torch import register_tensor

                b.x, b.out = _own_pages(b.x), _own_pages(b.out)
                regs = [register_tensor(torch.from_numpy(a), group) for a in (b.x, b.out) if a.size]
            try:
                call = torch_call(args.collective, b, args.op, group)
                wrong = None
                if args.check:
                    if args.collective == "broadcast" and rank != 0:
                        b.x[:] = 0
                    call()
                    wrong = count_wrong(args.collective, b, in_place=True) if args.op == "sum" else None
                t = timer.measure(call, iters, args.warmup)
                rows.append(row(args.collective, nbytes, b.x.size, args, size, t, wrong))
            except (RuntimeError, ValueError) as e:  # gloo lacks some collectives for some dtypes
                rows.append({"bytes": nbytes, "error": str(e).splitlines()[0]})
            for reg in regs:
                reg.deregister()
        results.append({"backend": backend, "api": "torch.distributed", "rows": rows})
    dist.destroy_process_group()
    return results


def main(argv: list[str] | None = None) -> int:
    p = arguments("mscomm.bench.worker")
    p.add_argument("--check", action="store_true")
    p.add_argument("--algorithm", default=None)
    p.add_argument("--plan", default=None, help="plan JSON to run with the executor")
    p.add_argument("--register", action="store_true", help="register the buffers (comm.register)")
    p.add_argument("--gloo", action="store_true")
    p.add_argument("--torch", action="store_true", help="measure mscomm through torch.distributed")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    comm = mscomm.init()
    rank, size = comm.rank, comm.size
    if args.torch:
        comm.close()
        results = run_torch(args, rank, size, ["mscomm"] + (["gloo"] if args.gloo else []))
    else:
        results = [run_mscomm(args, comm)]
        if args.gloo:
            results.extend(run_torch(args, rank, size, ["gloo"]))
        comm.close()
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump({"nranks": size, "results": results}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
