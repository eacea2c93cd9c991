"""One rank of the MPI comparison (started by ``mscomm-bench --compare mpi`` through mpiexec)."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from mscomm.bench.sizes import iterations_for
from mscomm.bench.worker import Timer, _dtype, row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mscomm.bench.mpi_worker")
    p.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], required=True)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--op", default="sum")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", required=True)
    args, _ = p.parse_known_args(argv)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    ops = {"sum": MPI.SUM, "prod": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX, "avg": MPI.SUM}
    timer = Timer(comm.Barrier, lambda v: comm.allreduce(v, op=MPI.MAX), args.reps)
    dt = _dtype(args.dtype)
    rows = []
    for nbytes in args.sizes:
        count = nbytes // dt.itemsize
        x = np.ones(count, dt)
        iters = iterations_for(nbytes) if args.iters is None else args.iters
        t = timer.measure(lambda: comm.Allreduce(MPI.IN_PLACE, x, op=ops[args.op]), iters, args.warmup)
        rows.append(row(nbytes, count, args.dtype, args.op, comm.size, t, None))
    if comm.rank == 0:
        with open(args.out, "w") as f:
            json.dump({"backend": "mpi", "library": MPI.Get_library_version().splitlines()[0], "rows": {"in_place": rows}}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
