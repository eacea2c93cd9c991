"""One rank of the MPI comparison (started by ``mscomm-bench --compare mpi`` through mpiexec)."""

from __future__ import annotations

import json
import sys

from mscomm.bench.sizes import iterations_for
from mscomm.bench.specs import buffers, mpi_call
from mscomm.bench.worker import Timer, arguments, np_dtype, row


def main(argv: list[str] | None = None) -> int:
    p = arguments("mscomm.bench.mpi_worker")
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
