"""One rank of the MPI comparison (started by ``mscomm-bench --compare mpi`` through mpiexec)."""

from __future__ import annotations

import argparse
import json
import sys

from mscomm.bench.sizes import iterations_for
from mscomm.bench.specs import buffers, mpi_call
from mscomm.bench.worker import Timer, np_dtype, row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mscomm.bench.mpi_worker")
    p.add_argument("--collective", default="allreduce")
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
    timer = Timer(comm.Barrier, lambda v: comm.allreduce(v, op=MPI.MAX), args.reps)
    dt = np_dtype(args.dtype)
    rows = []
    for nbytes in args.sizes:
        b = buffers(args.collective, nbytes, comm.rank, comm.size, dt)
        iters = iterations_for(nbytes) if args.iters is None else args.iters
        t = timer.measure(mpi_call(args.collective, comm, b, args.op), iters, args.warmup)
        rows.append(row(args.collective, nbytes, b.x.size, args, comm.size, t, None))
    if comm.rank == 0:
        with open(args.out, "w") as f:
            json.dump({"backend": "mpi", "library": MPI.Get_library_version().splitlines()[0], "rows": rows}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
