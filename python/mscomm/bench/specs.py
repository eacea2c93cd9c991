"""What each benchmarked collective does with a message of `nbytes`, for mscomm, gloo and MPI.

Sizes follow nccl-tests: for allgather and gather the size is the whole output, for
reduce_scatter and scatter the whole input, for alltoall the buffer each rank sends; bus
bandwidth = algbw * busbw_factor (nccl-tests' definitions). Barrier moves no data: one row of 0 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

COLLECTIVES = ("allreduce", "reduce", "broadcast", "allgather", "reduce_scatter", "alltoall", "gather", "scatter",
               "sendrecv", "barrier")
ROOT = 0


def busbw_factor(collective: str, n: int) -> float:
    if n <= 1:
        return 1.0
    if collective == "allreduce":
        return 2.0 * (n - 1) / n
    if collective in ("allgather", "reduce_scatter", "alltoall", "gather", "scatter"):
        return (n - 1) / n
    return 1.0


def pattern(count: int, rank: int, dtype: np.dtype) -> np.ndarray:
    """Small integers, so sums over up to 8 ranks are exact in every dtype."""
    return ((np.arange(count) % 5) + rank % 3).astype(dtype)


@dataclass
class Buffers:
    x: np.ndarray    # input
    out: np.ndarray  # output
    expected: np.ndarray | None  # what `out` (or x, for broadcast) must hold on this rank after one call


def buffers(collective: str, nbytes: int, rank: int, n: int, dtype: np.dtype) -> Buffers:
    """Inputs and the expected output of one call (sum for reductions)."""
    es = dtype.itemsize
    if collective in ("allgather", "gather", "reduce_scatter", "scatter", "alltoall"):
        per = max(1, nbytes // es // n)
    else:
        per = max(1, nbytes // es)
    everyone = lambda count: [pattern(count, r, dtype) for r in range(n)]  # noqa: E731
    if collective == "allreduce":
        return Buffers(pattern(per, rank, dtype), np.empty(per, dtype), sum(e.astype(np.int64) for e in everyone(per)).astype(dtype))
    if collective == "reduce":
        exp = sum(e.astype(np.int64) for e in everyone(per)).astype(dtype) if rank == ROOT else None
        return Buffers(pattern(per, rank, dtype), np.empty(per, dtype), exp)
    if collective == "broadcast":
        return Buffers(pattern(per, rank, dtype), np.empty(0, dtype), pattern(per, ROOT, dtype))
    if collective in ("allgather", "gather"):
        exp = np.concatenate(everyone(per)) if (collective == "allgather" or rank == ROOT) else None
        return Buffers(pattern(per, rank, dtype), np.empty(per * n, dtype), exp)
    if collective == "reduce_scatter":
        full = [pattern(per * n, r, dtype) for r in range(n)]
        exp = sum(f.astype(np.int64) for f in full)[rank * per:(rank + 1) * per].astype(dtype)
        return Buffers(full[rank], np.empty(per, dtype), exp)
    if collective == "scatter":
        full = pattern(per * n, ROOT, dtype)
        return Buffers(full, np.empty(per, dtype), full[rank * per:(rank + 1) * per].copy())
    if collective == "alltoall":
        send = np.concatenate([pattern(per, rank * n + p, dtype) for p in range(n)])
        exp = np.concatenate([pattern(per, q * n + rank, dtype) for q in range(n)])
        return Buffers(send, np.empty(per * n, dtype), exp)
    if collective == "sendrecv":
        return Buffers(pattern(per, rank, dtype), np.empty(per, dtype), pattern(per, (rank - 1) % n, dtype))
    if collective == "barrier":
        return Buffers(np.empty(0, dtype), np.empty(0, dtype), None)
    raise ValueError(collective)


def mscomm_call(collective: str, comm: Any, b: Buffers, op: str, algorithm: str | None) -> Callable[[], Any]:
    import mscomm

    n, rank = comm.size, comm.rank
    calls = {
        "allreduce": lambda: mscomm.allreduce(b.x, op, out=b.out, comm=comm, algorithm=algorithm),
        "reduce": lambda: mscomm.reduce(b.x, ROOT, op, out=b.out, comm=comm),
        "broadcast": lambda: mscomm.broadcast(b.x, ROOT, comm=comm),
        "allgather": lambda: mscomm.allgather(b.x, out=b.out, comm=comm, algorithm=algorithm),
        "gather": lambda: mscomm.gather(b.x, ROOT, out=b.out, comm=comm),
        "reduce_scatter": lambda: mscomm.reduce_scatter(b.x, op, out=b.out, comm=comm, algorithm=algorithm),
        "scatter": lambda: mscomm.scatter(b.x, ROOT, out=b.out, comm=comm),
        "alltoall": lambda: mscomm.alltoall(b.x, out=b.out, comm=comm),
        "sendrecv": lambda: _ring_sendrecv(lambda: mscomm.send(b.x, (rank + 1) % n, comm=comm),
                                           lambda: mscomm.recv(b.out, (rank - 1) % n, comm=comm), rank),
        "barrier": lambda: mscomm.barrier(comm=comm, algorithm=algorithm),
    }
    return calls[collective]


def _ring_sendrecv(send: Callable[[], Any], recv: Callable[[], Any], rank: int) -> None:
    # Even ranks send first, odd ranks receive first: every rank sends to the next and receives
    # from the previous without deadlock.
    if rank % 2 == 0:
        send()
        recv()
    else:
        recv()
        send()


def torch_call(collective: str, b: Buffers, op: str, group: Any = None) -> Callable[[], Any]:
    """The collective through torch.distributed on `group` (default: the default group)."""
    import torch
    import torch.distributed as dist

    ops = {"sum": dist.ReduceOp.SUM, "prod": dist.ReduceOp.PRODUCT, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX,
           "avg": dist.ReduceOp.SUM}
    x, out = torch.from_numpy(b.x), torch.from_numpy(b.out)
    rank, n = dist.get_rank(), dist.get_world_size()
    chunks = list(out.chunk(n)) if out.numel() else []
    g = group
    calls = {
        "allreduce": lambda: dist.all_reduce(x, op=ops[op], group=g),
        "reduce": lambda: dist.reduce(x, ROOT, op=ops[op], group=g),
        "broadcast": lambda: dist.broadcast(x, ROOT, group=g),
        "allgather": lambda: dist.all_gather_into_tensor(out, x, group=g),
        "gather": lambda: dist.gather(x, chunks if rank == ROOT else None, dst=ROOT, group=g),
        "reduce_scatter": lambda: dist.reduce_scatter_tensor(out, x, op=ops[op], group=g),
        "scatter": lambda: dist.scatter(out, list(x.chunk(n)) if rank == ROOT else None, src=ROOT, group=g),
        "alltoall": lambda: dist.all_to_all_single(out, x, group=g),
        "sendrecv": lambda: _ring_sendrecv(lambda: dist.send(x, (rank + 1) % n, group=g),
                                           lambda: dist.recv(out, (rank - 1) % n, group=g), rank),
        "barrier": lambda: dist.barrier(group=g),
    }
    return calls[collective]


def mpi_call(collective: str, comm: Any, b: Buffers, op: str) -> Callable[[], Any]:
    """The collective through mpi4py; allreduce in place (MPI.IN_PLACE), as gloo and the peers run it."""
    from mpi4py import MPI

    ops = {"sum": MPI.SUM, "prod": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX, "avg": MPI.SUM}
    rank, n = comm.rank, comm.size
    calls = {
        "allreduce": lambda: comm.Allreduce(MPI.IN_PLACE, b.x, op=ops[op]),
        "reduce": lambda: comm.Reduce(b.x, b.out, op=ops[op], root=ROOT),
        "broadcast": lambda: comm.Bcast(b.x, root=ROOT),
        "allgather": lambda: comm.Allgather(b.x, b.out),
        "gather": lambda: comm.Gather(b.x, b.out, root=ROOT),
        "reduce_scatter": lambda: comm.Reduce_scatter_block(b.x, b.out, op=ops[op]),
        "scatter": lambda: comm.Scatter(b.x, b.out, root=ROOT),
        "alltoall": lambda: comm.Alltoall(b.x, b.out),
        "sendrecv": lambda: comm.Sendrecv(b.x, (rank + 1) % n, recvbuf=b.out, source=(rank - 1) % n),
        "barrier": comm.Barrier,
    }
    return calls[collective]
