"""Collective operations on arrays (numpy, torch CPU tensors, buffers).

One calling convention for every collective, like numpy's ufuncs: the data first, then the
collective's own parameters (``op``, ``root``, counts), then keywords. ``out=`` names where the
result goes; when it is omitted the result is written in place where the collective allows it
(allreduce, reduce, broadcast) and otherwise into a new array of the input's kind (numpy array
or torch tensor) that the call returns. Every call takes the same keywords: ``comm`` (default: the
communicator made by :func:`mscomm.init`), ``timeout`` (seconds for this call), ``algorithm``
(a row of the selection table, see :func:`mscomm.algorithms`) where the collective has several,
and ``async_op`` (return a :class:`Work` whose ``wait()`` returns the result).

Shapes: allgather and gather concatenate the ranks' inputs along axis 0 (``(size * n, ...)`` for
an input of shape ``(n, ...)``); reduce_scatter and scatter split axis 0 of the input into
``size`` equal blocks; alltoall keeps the input's shape; alltoallv works on flat element counts.

Every rank must call the same collectives in the same order with matching counts, dtypes, ops
and roots; a disagreement raises :class:`mscomm.InvalidArgument` on every rank.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mscomm import _core, _default, plans
from mscomm.buffers import Buffer, as_buffer
from mscomm.errors import InvalidArgument

REDUCE_OPS = ("sum", "prod", "min", "max", "avg")


def _resolve_comm(comm: Any) -> Any:
    return _default.get() if comm is None else comm


_OP_NAMES = {name: name for name in REDUCE_OPS}


def _check_op(op: Any, what: str) -> str:
    name = _OP_NAMES.get(op) if type(op) is str else None
    if name is not None:
        return name
    if not isinstance(op, str) and hasattr(op, "__len__"):
        raise InvalidArgument(f"{what}: op must be one of {', '.join(REDUCE_OPS)}, got an array; the output "
                              f"goes in out= ({what}(x, op, out=y))")
    name = str(getattr(op, "name", op)).lower()
    if name in ("mean", "average"):
        name = "avg"
    if name not in REDUCE_OPS:
        raise InvalidArgument(f"{what}: unsupported reduce op {op!r}; choose one of {', '.join(REDUCE_OPS)}")
    return name


def _check_rank(value: Any, what: str, name: str = "root", has_out: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        hint = f"; the output goes in out= ({what}(x, {name}, out=y))" if has_out and hasattr(value, "__len__") else ""
        raise InvalidArgument(f"{what}: {name} must be a rank (an int), got {type(value).__name__}{hint}")
    return int(value)


def _no_extra(what: str, extra: tuple, signature: str) -> None:
    if extra:
        raise InvalidArgument(f"{what}: too many positional arguments; call it as {signature} (the output "
                              "is the out= keyword)")


def _timeout(timeout: float | None) -> float:
    """Seconds for the C++ core; -1 means the communicator's timeout."""
    if timeout is None:
        return -1.0
    if not timeout > 0:
        raise InvalidArgument(f"timeout must be positive (seconds), got {timeout!r}")
    return float(timeout)


def _empty_like(x: Any, shape: tuple[int, ...]) -> Any:
    """A new array of ``x``'s kind (torch tensor or numpy array) and dtype."""
    if type(x).__module__.split(".")[0] == "torch":
        import torch

        return torch.empty(shape, dtype=x.dtype, device=x.device)
    return np.empty(shape, dtype=np.asarray(x).dtype if not isinstance(x, np.ndarray) else x.dtype)


def _shape(x: Any) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    return tuple(int(n) for n in (shape if shape is not None else (len(memoryview(x)),)))


def _stacked(x: Any, size: int) -> tuple[int, ...]:
    """Shape of ``size`` inputs like ``x`` concatenated along axis 0."""
    s = _shape(x)
    return (size * s[0], *s[1:]) if s else (size,)


def _block(x: Any, size: int, what: str) -> tuple[int, ...]:
    """Shape of one of ``size`` equal blocks along axis 0 of ``x``."""
    s = _shape(x)
    if s and s[0] % size == 0:
        return (s[0] // size, *s[1:])
    count = int(np.prod(s, dtype=np.int64)) if s else 1
    if count % size:
        raise InvalidArgument(f"{what}: x has {count} elements, which do not split into {size} equal blocks")
    return (count // size,)


def _output(what: str, x: Any, src: Buffer, out: Any, shape: tuple[int, ...], count: int) -> tuple[Any, Buffer]:
    """``out`` (checked: writable, ``count`` elements of the input's dtype) or a new array of ``shape``."""
    if out is None:
        out = _empty_like(x, shape)
    dst = as_buffer(out, writable=True, what=f"{what}: out")
    if dst.dtype != src.dtype or dst.count != count:
        raise InvalidArgument(f"{what}: out has {dst.count} x {dst.dtype}, expected {count} x {src.dtype} "
                              f"(x has {src.count} x {src.dtype})")
    return out, dst


def allreduce(x: Any, op: str = "sum", *, out: Any = None, comm: Any = None, timeout: float | None = None,
              algorithm: str | None = None, async_op: bool = False, plan: Any = None) -> Any:
    """Reduce ``x`` element-wise across all ranks; every rank receives the result.

    Parameters
    ----------
    x : array
        numpy array, torch CPU tensor, or buffer; contiguous, of a supported dtype.
    op : {"sum", "prod", "min", "max", "avg"}
        ``avg`` divides the sum by the number of ranks (integers: truncating division).
    out : array, optional
        Where the result goes (same dtype and size as ``x``). Default: ``x`` itself (in place).
    algorithm : str, optional
        A row of the selection table (``mscomm.algorithms("allreduce", x)`` lists them), e.g.
        ``"rsag"``, or ``"plan:<name>"`` for a plan loaded with ``comm.load_plan``; default: the
        automatic choice.
    plan : path, dict or LoadedPlan, optional
        Run this plan (docs/plan-format.md) with the executor; loaded on first use (see
        :mod:`mscomm.plans`). Allgather and reduce_scatter take the same keyword.

    Returns
    -------
    The array holding the result (``out``, or ``x`` when in place), or a Work if ``async_op``.

    Raises
    ------
    InvalidArgument
        Unsupported dtype, non-contiguous or read-only output, ``out`` of another dtype or size,
        an algorithm that cannot run this call, or arguments that differ across ranks (raised on
        every rank).
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
    opname = _check_op(op, "allreduce")
    if out is None:
        src = dst = as_buffer(x, writable=True, what="allreduce: x (in place; pass out= to keep x)")
        out = x
    else:
        src = as_buffer(x, writable=False, what="allreduce: x")
        out, dst = _output("allreduce", x, src, out, (), src.count)
    if plans.wants_plan(plan, algorithm):
        return plans.submit(comm, "allreduce", plan, algorithm, src, dst, src.count, opname, _timeout(timeout), out,
                            async_op)
    name = algorithm or ""
    return comm._submit(lambda: _core.allreduce(comm._core, src.ptr, dst.ptr, src.count, src.dtype, opname, 0,
                                                _timeout(timeout), name), out, async_op)


def reduce(x: Any, root: int = 0, op: str = "sum", *, out: Any = None, comm: Any = None,
           timeout: float | None = None, algorithm: str | None = None, async_op: bool = False) -> Any:
    """Reduce ``x`` across ranks into the root's ``out`` (default: ``x``, in place).

    Returns the root's result; other ranks get None (their buffers are untouched).
    """
    comm = _resolve_comm(comm)
    root = _check_rank(root, "reduce")
    opname = _check_op(op, "reduce")
    is_root = comm.rank == root
    src = as_buffer(x, writable=is_root and out is None, what="reduce: x")
    dst, result = src, None
    if is_root:
        result = x
        if out is not None:
            result, dst = _output("reduce", x, src, out, (), src.count)
    return comm._submit(lambda: _core.reduce(comm._core, src.ptr, dst.ptr if is_root else 0, src.count, src.dtype,
                                             opname, root, _timeout(timeout), algorithm or ""), result, async_op)


def broadcast(x: Any, root: int = 0, *, comm: Any = None, timeout: float | None = None,
              algorithm: str | None = None, async_op: bool = False) -> Any:
    """Copy the root's ``x`` into every rank's ``x`` (same size and dtype everywhere); returns ``x``."""
    comm = _resolve_comm(comm)
    root = _check_rank(root, "broadcast", has_out=False)
    buf = as_buffer(x, writable=comm.rank != root, what="broadcast: x")
    name = algorithm or ""
    return comm._submit(lambda: _core.broadcast(comm._core, buf.ptr, buf.count, buf.dtype, root, _timeout(timeout),
                                                name), x, async_op)


def allgather(x: Any, *args: Any, out: Any = None, comm: Any = None, timeout: float | None = None,
              algorithm: str | None = None, async_op: bool = False, plan: Any = None) -> Any:
    """Concatenate every rank's ``x`` in rank order along axis 0; returns the result (``out``, or a
    new array of shape ``(size * len(x), ...)``). ``x`` may be this rank's block of ``out``."""
    _no_extra("allgather", args, "allgather(x, out=y)")
    comm = _resolve_comm(comm)
    src = as_buffer(x, writable=False, what="allgather: x")
    out, dst = _output("allgather", x, src, out, _stacked(x, comm.size), src.count * comm.size)
    if plans.wants_plan(plan, algorithm):
        return plans.submit(comm, "allgather", plan, algorithm, src, dst, src.count, "sum", _timeout(timeout), out,
                            async_op)
    name = algorithm or ""
    return comm._submit(lambda: _core.allgather(comm._core, src.ptr, dst.ptr, src.count, src.dtype, "sum", 0,
                                                _timeout(timeout), name), out, async_op)


def reduce_scatter(x: Any, op: str = "sum", *args: Any, out: Any = None, comm: Any = None,
                   timeout: float | None = None, algorithm: str | None = None,
                   async_op: bool = False, plan: Any = None) -> Any:
    """Reduce ``x`` (``size`` equal blocks along axis 0) across ranks; rank r gets the reduced block r,
    in ``out`` or a new array of one block's shape, which it returns."""
    _no_extra("reduce_scatter", args, "reduce_scatter(x, op, out=y)")
    comm = _resolve_comm(comm)
    opname = _check_op(op, "reduce_scatter")
    src = as_buffer(x, writable=False, what="reduce_scatter: x")
    if src.count % comm.size:
        raise InvalidArgument(f"reduce_scatter: x has {src.count} elements, which do not split into {comm.size} "
                              "equal blocks")
    shape = _block(x, comm.size, "reduce_scatter") if out is None else ()
    out, dst = _output("reduce_scatter", x, src, out, shape, src.count // comm.size)
    if plans.wants_plan(plan, algorithm):
        return plans.submit(comm, "reduce_scatter", plan, algorithm, src, dst, dst.count, opname, _timeout(timeout),
                            out, async_op)
    name = algorithm or ""
    return comm._submit(lambda: _core.reduce_scatter(comm._core, src.ptr, dst.ptr, dst.count, dst.dtype, opname, 0,
                                                     _timeout(timeout), name), out, async_op)


def alltoall(x: Any, *args: Any, out: Any = None, comm: Any = None, timeout: float | None = None,
             algorithm: str | None = None, async_op: bool = False) -> Any:
    """Block p of ``x`` (``size`` equal blocks) goes to rank p; block q of the result came from rank q.
    Returns ``out`` or a new array of ``x``'s shape (``out`` must not be ``x``)."""
    _no_extra("alltoall", args, "alltoall(x, out=y)")
    comm = _resolve_comm(comm)
    src = as_buffer(x, writable=False, what="alltoall: x")
    if src.count % comm.size:
        raise InvalidArgument(f"alltoall: {src.count} elements do not split into {comm.size} equal blocks; "
                              "use alltoallv for uneven blocks")
    out, dst = _output("alltoall", x, src, out, _shape(x), src.count)
    name = algorithm or ""
    return comm._submit(lambda: _core.alltoall(comm._core, src.ptr, dst.ptr, src.count // comm.size, src.dtype,
                                               "sum", 0, _timeout(timeout), name), out, async_op)


def _counts(what: str, counts: Any, size: int) -> list[int]:
    if isinstance(counts, (str, bytes)) or not hasattr(counts, "__len__"):
        raise InvalidArgument(f"{what} must be a sequence of {size} element counts, got {type(counts).__name__}")
    values = list(counts)
    if any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) for c in values):
        raise InvalidArgument(f"{what} must hold integer element counts, got {values!r}")
    values = [int(c) for c in values]
    if len(values) != size or any(c < 0 for c in values):
        raise InvalidArgument(f"{what} must hold {size} non-negative element counts, got {values}")
    return values


def alltoallv(x: Any, send_counts: Sequence[int], recv_counts: Sequence[int] | None = None, *args: Any,
              out: Any = None, comm: Any = None, timeout: float | None = None, algorithm: str | None = None,
              async_op: bool = False) -> Any:
    """Uneven all-to-all (the MoE dispatch): ``send_counts[p]`` elements of ``x`` go to rank p, packed
    in rank order; the result holds ``recv_counts[q]`` elements from rank q, packed in rank order
    (``out``, or a new flat array of ``sum(recv_counts)`` elements).

    Without ``recv_counts`` the ranks first exchange their send counts (one small alltoall).
    """
    _no_extra("alltoallv", args, "alltoallv(x, send_counts, recv_counts, out=y)")
    comm = _resolve_comm(comm)
    src = as_buffer(x, writable=False, what="alltoallv: x")
    sc = _counts("alltoallv: send_counts", send_counts, comm.size)
    if recv_counts is None:
        recv_counts = alltoall(np.asarray(sc, np.int64), comm=comm, timeout=timeout).tolist()
    rc = _counts("alltoallv: recv_counts", recv_counts, comm.size)
    if out is None:
        out = _empty_like(x, (sum(rc),))
    dst = as_buffer(out, writable=True, what="alltoallv: out")
    if src.dtype != dst.dtype:
        raise InvalidArgument(f"alltoallv: x is {src.dtype} but out is {dst.dtype}")
    if sum(sc) > src.count or sum(rc) > dst.count:
        raise InvalidArgument(f"alltoallv: counts need {sum(sc)} elements in x (has {src.count}) and {sum(rc)} in out "
                              f"(has {dst.count})")
    return comm._submit(lambda: _core.alltoallv(comm._core, src.ptr, sc, dst.ptr, rc, src.dtype, _timeout(timeout),
                                                        algorithm or ""),
                        out, async_op)


def gather(x: Any, root: int = 0, *args: Any, out: Any = None, comm: Any = None, timeout: float | None = None,
           algorithm: str | None = None, async_op: bool = False) -> Any:
    """The root gets every rank's ``x`` concatenated in rank order along axis 0 (``out``, or a new
    array of shape ``(size * len(x), ...)``) and returns it; other ranks return None (``out`` ignored)."""
    _no_extra("gather", args, "gather(x, root, out=y)")
    comm = _resolve_comm(comm)
    root = _check_rank(root, "gather")
    src = as_buffer(x, writable=False, what="gather: x")
    dst = None
    if comm.rank == root:
        out, dst = _output("gather", x, src, out, _stacked(x, comm.size), src.count * comm.size)
    else:
        out = None
    return comm._submit(lambda: _core.gather(comm._core, src.ptr, dst.ptr if dst else 0, src.count, src.dtype, "sum",
                                             root, _timeout(timeout), algorithm or ""), out, async_op)


def scatter(x: Any, root: int = 0, *args: Any, out: Any = None, comm: Any = None, timeout: float | None = None,
            algorithm: str | None = None, async_op: bool = False) -> Any:
    """Block r of the root's ``x`` (``size`` equal blocks along axis 0) goes to rank r; returns it
    (``out``, or on the root a new array of one block's shape). Non-roots pass ``x=None`` and must
    give ``out=`` (they cannot know the block size otherwise)."""
    _no_extra("scatter", args, "scatter(x, root, out=y)")
    comm = _resolve_comm(comm)
    root = _check_rank(root, "scatter")
    is_root = comm.rank == root
    src = None
    if is_root:
        if x is None:
            raise InvalidArgument(f"scatter: the root (rank {root}) must pass the data to scatter as x")
        src = as_buffer(x, writable=False, what="scatter: x (on the root)")
        if src.count % comm.size:
            raise InvalidArgument(f"scatter: x has {src.count} elements, which do not split into {comm.size} "
                                  "equal blocks")
        shape = _block(x, comm.size, "scatter") if out is None else ()
        out, dst = _output("scatter", x, src, out, shape, src.count // comm.size)
    else:
        if out is None:
            raise InvalidArgument(f"scatter: rank {comm.rank} is not the root, so it must pass out= (an array of one "
                                  "block, to receive its part)")
        dst = as_buffer(out, writable=True, what="scatter: out")
    return comm._submit(lambda: _core.scatter(comm._core, src.ptr if src else 0, dst.ptr, dst.count, dst.dtype,
                                              "sum", root, _timeout(timeout), algorithm or ""), out, async_op)


def send(x: Any, peer: int, tag: int = 0, *, comm: Any = None, timeout: float | None = None,
         async_op: bool = False) -> Any:
    """Send ``x`` to ``peer``. Transfers between two ranks match in order; their tags must agree."""
    comm = _resolve_comm(comm)
    peer = _check_rank(peer, "send", "peer", has_out=False)
    src = as_buffer(x, writable=False, what="send: x")
    return comm._submit(lambda: _core.send(comm._core, src.ptr, src.count, src.dtype, peer, tag, _timeout(timeout)),
                        x, async_op)


def recv(x: Any, peer: int, tag: int = 0, *, comm: Any = None, timeout: float | None = None,
         async_op: bool = False) -> Any:
    """Receive into ``x`` from ``peer`` (the sender's count and dtype must match); returns ``x``."""
    comm = _resolve_comm(comm)
    peer = _check_rank(peer, "recv", "peer", has_out=False)
    dst = as_buffer(x, writable=True, what="recv: x")
    return comm._submit(lambda: _core.recv(comm._core, dst.ptr, dst.count, dst.dtype, peer, tag, _timeout(timeout)),
                        x, async_op)


def barrier(*, comm: Any = None, timeout: float | None = None, algorithm: str | None = None,
            async_op: bool = False) -> Any:
    """Return once every rank has entered the barrier."""
    comm = _resolve_comm(comm)
    return comm._submit(lambda: _core.barrier(comm._core, _timeout(timeout), algorithm or ""), None, async_op)


def register(x: Any, *, comm: Any = None, timeout: float | None = None) -> Any:
    """Collective: register ``x`` so later collectives on it skip the staging copy (see
    mscomm.registration); returns a handle whose ``deregister()`` undoes it."""
    return _resolve_comm(comm).register(x, timeout)
