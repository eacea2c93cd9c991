"""Collective operations on arrays (numpy, torch CPU tensors, buffers).

Every function takes the data first, then its own parameters, then the same keywords:
``comm`` (default: the communicator made by :func:`mscomm.init`), ``timeout`` (seconds for this
call), and ``async_op`` (return a :class:`Work` instead of blocking). Each returns the array
holding the result, or a Work whose ``wait()`` returns it.

Every rank must call the same collectives in the same order with matching counts, dtypes, ops
and roots; a disagreement raises :class:`mscomm.InvalidArgument` on every rank.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from mscomm import _core
from mscomm.buffers import Buffer, as_buffer
from mscomm.errors import InvalidArgument

REDUCE_OPS = ("sum", "prod", "min", "max", "avg")


def _resolve_comm(comm: Any) -> Any:
    if comm is None:
        from mscomm.launch_env import get_default

        comm = get_default()
    return comm


def _check_op(op: Any) -> str:
    name = str(getattr(op, "name", op)).lower()
    if name in ("mean", "average"):
        name = "avg"
    if name not in REDUCE_OPS:
        raise InvalidArgument(f"unsupported reduce op {op!r}; choose one of {', '.join(REDUCE_OPS)}")
    return name


def _timeout(timeout: float | None) -> float:
    """Seconds for the C++ core; -1 means the communicator's timeout."""
    if timeout is None:
        return -1.0
    if not timeout > 0:
        raise InvalidArgument(f"timeout must be positive (seconds), got {timeout!r}")
    return float(timeout)


def _match(what: str, out: Buffer, x: Buffer, count: int) -> None:
    if out.dtype != x.dtype or out.count != count:
        need = f"x has {x.count} x {x.dtype}" if count == x.count else f"needs {count} x {x.dtype}"
        raise InvalidArgument(f"{what}: out has {out.count} x {out.dtype} but {need}")


def _run(comm: Any, async_op: bool, fn: Callable[[], None], result: Any) -> Any:
    return comm._submit(fn, result, async_op)


def allreduce(x: Any, op: str = "sum", *, out: Any = None, comm: Any = None, timeout: float | None = None,
              algorithm: str | None = None, async_op: bool = False) -> Any:
    """Reduce ``x`` element-wise across all ranks; every rank receives the result.

    Parameters
    ----------
    x : array
        numpy array, torch CPU tensor, or buffer; contiguous, of a supported dtype.
    op : {"sum", "prod", "min", "max", "avg"}
        ``avg`` divides the sum by the number of ranks (integers: truncating division).
    out : array, optional
        Where the result goes (same dtype and size as ``x``). Default: ``x`` itself (in place).
    algorithm : {"auto", "oneshot", "rsag", "direct", "ring", "hier"}, optional
        Overrides the tuning table (see docs/algorithms.md).

    Returns
    -------
    The array holding the result (``out``, or ``x`` when in place), or a Work if ``async_op``.

    Raises
    ------
    InvalidArgument
        Unsupported dtype, non-contiguous or read-only output, ``out`` of another dtype or size, or
        arguments that differ across ranks (raised on every rank).
    Timeout
        A rank did not take part in time.
    PeerFailure
        A rank died or failed during the call.

    Examples
    --------
    >>> import numpy as np, mscomm
    >>> comm = mscomm.Communicator(0, 1, mscomm.create_unique_id())
    >>> mscomm.allreduce(np.array([1, 2, 3], dtype=np.int32), "max", comm=comm).tolist()
    [1, 2, 3]
    >>> comm.close()
    """
    comm = _resolve_comm(comm)
    opname = _check_op(op)
    if out is None:
        src = dst = as_buffer(x, writable=True, what="allreduce: x (in place; pass out= to keep x)")
        result = x
    else:
        src = as_buffer(x, writable=False, what="allreduce: x")
        dst = as_buffer(out, writable=True, what="allreduce: out")
        _match("allreduce", dst, src, src.count)
        result = out
    return _run(comm, async_op, lambda: _core.allreduce(comm._core, src.ptr, dst.ptr, src.count, src.dtype, opname, 0,
                                                         _timeout(timeout), algorithm or ""), result)


def reduce(x: Any, root: int = 0, op: str = "sum", *, out: Any = None, comm: Any = None,
           timeout: float | None = None, async_op: bool = False) -> Any:
    """Reduce ``x`` across ranks into the root's ``out`` (default ``x``); other ranks' buffers are untouched."""
    comm = _resolve_comm(comm)
    opname = _check_op(op)
    is_root = comm.rank == root
    src = as_buffer(x, writable=is_root and out is None, what="reduce: x")
    dst = src
    if out is not None and is_root:
        dst = as_buffer(out, writable=True, what="reduce: out")
        _match("reduce", dst, src, src.count)
    result = (out if out is not None else x) if is_root else None
    return _run(comm, async_op, lambda: _core.reduce(comm._core, src.ptr, dst.ptr if is_root else 0, src.count,
                                                      src.dtype, opname, root, _timeout(timeout), ""), result)


def broadcast(x: Any, root: int = 0, *, comm: Any = None, timeout: float | None = None,
              algorithm: str | None = None, async_op: bool = False) -> Any:
    """Copy the root's ``x`` into every rank's ``x`` (same size and dtype everywhere).
    ``algorithm``: auto, staged, direct or chain (docs/algorithms.md)."""
    comm = _resolve_comm(comm)
    buf = as_buffer(x, writable=comm.rank != root, what="broadcast: x")
    return _run(comm, async_op, lambda: _core.broadcast(comm._core, buf.ptr, buf.count, buf.dtype, root,
                                                         _timeout(timeout), algorithm or ""), x)


def allgather(out: Any, x: Any, *, comm: Any = None, timeout: float | None = None, algorithm: str | None = None,
              async_op: bool = False) -> Any:
    """Concatenate every rank's ``x`` in rank order into ``out`` (``size * len(x)`` elements).
    ``algorithm``: auto, staged, direct or ring (docs/algorithms.md)."""
    comm = _resolve_comm(comm)
    src = as_buffer(x, writable=False, what="allgather: x")
    dst = as_buffer(out, writable=True, what="allgather: out")
    _match("allgather", dst, src, src.count * comm.size)
    return _run(comm, async_op, lambda: _core.allgather(comm._core, src.ptr, dst.ptr, src.count, src.dtype, "sum", 0,
                                                         _timeout(timeout), algorithm or ""), out)


def reduce_scatter(out: Any, x: Any, op: str = "sum", *, comm: Any = None, timeout: float | None = None,
                   algorithm: str | None = None, async_op: bool = False) -> Any:
    """Reduce ``x`` (``size * len(out)`` elements) across ranks; rank r gets block r in ``out``.
    ``algorithm``: auto, staged, direct or ring (docs/algorithms.md)."""
    comm = _resolve_comm(comm)
    opname = _check_op(op)
    src = as_buffer(x, writable=False, what="reduce_scatter: x")
    dst = as_buffer(out, writable=True, what="reduce_scatter: out")
    if src.dtype != dst.dtype or src.count != dst.count * comm.size:
        raise InvalidArgument(f"reduce_scatter: x has {src.count} x {src.dtype}; expected {comm.size} x "
                              f"len(out) = {dst.count * comm.size} x {dst.dtype}")
    return _run(comm, async_op, lambda: _core.reduce_scatter(comm._core, src.ptr, dst.ptr, dst.count, dst.dtype, opname,
                                                              0, _timeout(timeout), algorithm or ""), out)


def alltoall(out: Any, x: Any, *, comm: Any = None, timeout: float | None = None, algorithm: str | None = None,
             async_op: bool = False) -> Any:
    """Block p of ``x`` goes to rank p; block q of ``out`` comes from rank q (equal blocks).
    ``algorithm``: auto, staged, direct or pairwise (docs/algorithms.md)."""
    comm = _resolve_comm(comm)
    src = as_buffer(x, writable=False, what="alltoall: x")
    dst = as_buffer(out, writable=True, what="alltoall: out")
    _match("alltoall", dst, src, src.count)
    if src.count % comm.size:
        raise InvalidArgument(f"alltoall: {src.count} elements do not split into {comm.size} equal blocks; "
                              "use alltoallv for uneven blocks")
    return _run(comm, async_op, lambda: _core.alltoall(comm._core, src.ptr, dst.ptr, src.count // comm.size, src.dtype,
                                                        "sum", 0, _timeout(timeout), algorithm or ""), out)


def _counts(what: str, counts: Sequence[int], size: int) -> list[int]:
    counts = [int(c) for c in counts]
    if len(counts) != size or any(c < 0 for c in counts):
        raise InvalidArgument(f"{what} must hold {size} non-negative element counts, got {counts}")
    return counts


def alltoallv(out: Any, x: Any, send_counts: Sequence[int], recv_counts: Sequence[int] | None = None, *,
              comm: Any = None, timeout: float | None = None, async_op: bool = False) -> Any:
    """Uneven all-to-all (the MoE dispatch): ``send_counts[p]`` elements of ``x`` go to rank p, packed in
    rank order; ``out`` receives ``recv_counts[q]`` elements from rank q, packed in rank order.

    Without ``recv_counts`` the ranks first exchange their send counts (one small alltoall).
    """
    comm = _resolve_comm(comm)
    src = as_buffer(x, writable=False, what="alltoallv: x")
    dst = as_buffer(out, writable=True, what="alltoallv: out")
    sc = _counts("alltoallv: send_counts", send_counts, comm.size)
    if recv_counts is None:
        theirs = np.zeros(comm.size, np.int64)
        alltoall(theirs, np.asarray(sc, np.int64), comm=comm, timeout=timeout)
        recv_counts = theirs.tolist()
    rc = _counts("alltoallv: recv_counts", recv_counts, comm.size)
    if src.dtype != dst.dtype:
        raise InvalidArgument(f"alltoallv: x is {src.dtype} but out is {dst.dtype}")
    if sum(sc) > src.count or sum(rc) > dst.count:
        raise InvalidArgument(f"alltoallv: counts need {sum(sc)} elements in x (has {src.count}) and {sum(rc)} in out "
                              f"(has {dst.count})")
    return _run(comm, async_op, lambda: _core.alltoallv(comm._core, src.ptr, sc, dst.ptr, rc, src.dtype,
                                                         _timeout(timeout)), out)


def gather(out: Any, x: Any, root: int = 0, *, comm: Any = None, timeout: float | None = None,
           async_op: bool = False) -> Any:
    """The root's ``out`` gets every rank's ``x`` in rank order; ``out`` is ignored (may be None) elsewhere."""
    comm = _resolve_comm(comm)
    src = as_buffer(x, writable=False, what="gather: x")
    is_root = comm.rank == root
    dst = as_buffer(out, writable=True, what="gather: out (on the root)") if is_root else None
    if dst is not None:
        _match("gather", dst, src, src.count * comm.size)
    return _run(comm, async_op, lambda: _core.gather(comm._core, src.ptr, dst.ptr if dst else 0, src.count, src.dtype,
                                                      "sum", root, _timeout(timeout), ""), out if is_root else None)


def scatter(out: Any, x: Any, root: int = 0, *, comm: Any = None, timeout: float | None = None,
            async_op: bool = False) -> Any:
    """Block r of the root's ``x`` goes to rank r's ``out``; ``x`` is ignored (may be None) elsewhere."""
    comm = _resolve_comm(comm)
    dst = as_buffer(out, writable=True, what="scatter: out")
    is_root = comm.rank == root
    src = as_buffer(x, writable=False, what="scatter: x (on the root)") if is_root else None
    if src is not None and (src.dtype != dst.dtype or src.count != dst.count * comm.size):
        raise InvalidArgument(f"scatter: x has {src.count} x {src.dtype}; expected {comm.size * dst.count} x {dst.dtype}")
    return _run(comm, async_op, lambda: _core.scatter(comm._core, src.ptr if src else 0, dst.ptr, dst.count, dst.dtype,
                                                       "sum", root, _timeout(timeout), ""), out)


def send(x: Any, peer: int, tag: int = 0, *, comm: Any = None, timeout: float | None = None,
         async_op: bool = False) -> Any:
    """Send ``x`` to ``peer``. Transfers between two ranks match in order; their tags must agree."""
    comm = _resolve_comm(comm)
    src = as_buffer(x, writable=False, what="send: x")
    return _run(comm, async_op, lambda: _core.send(comm._core, src.ptr, src.count, src.dtype, peer, tag,
                                                    _timeout(timeout)), x)


def recv(x: Any, peer: int, tag: int = 0, *, comm: Any = None, timeout: float | None = None,
         async_op: bool = False) -> Any:
    """Receive into ``x`` from ``peer`` (the sender's count and dtype must match)."""
    comm = _resolve_comm(comm)
    dst = as_buffer(x, writable=True, what="recv: x")
    return _run(comm, async_op, lambda: _core.recv(comm._core, dst.ptr, dst.count, dst.dtype, peer, tag,
                                                    _timeout(timeout)), x)


def barrier(*, comm: Any = None, timeout: float | None = None, async_op: bool = False) -> Any:
    """Return once every rank has entered the barrier."""
    comm = _resolve_comm(comm)
    return _run(comm, async_op, lambda: _core.barrier(comm._core, _timeout(timeout)), None)


def register(x: Any, *, comm: Any = None, timeout: float | None = None) -> Any:
    """Collective: register ``x`` so later collectives on it skip the staging copy (see
    mscomm.registration); returns a handle whose ``deregister()`` undoes it."""
    return _resolve_comm(comm).register(x, timeout)
