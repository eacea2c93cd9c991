"""Collective operations on arrays (numpy, torch CPU tensors, buffers)."""

from __future__ import annotations

from typing import Any

from mscomm import _core
from mscomm.buffers import as_buffer
from mscomm.errors import InvalidArgument

REDUCE_OPS = ("sum", "prod", "min", "max", "avg")


def _resolve_comm(comm: Any) -> Any:
    if comm is None:
        from mscomm.launch_env import get_default

        comm = get_default()
    return comm


def _check_op(op: Any) -> str:
    name = getattr(op, "name", op)
    name = str(name).lower()
    if name in ("mean", "average"):
        name = "avg"
    if name not in REDUCE_OPS:
        raise InvalidArgument(f"unsupported reduce op {op!r}; choose one of {', '.join(REDUCE_OPS)}")
    return name


def allreduce(x: Any, op: str = "sum", *, out: Any = None, comm: Any = None, timeout: float | None = None,
              algorithm: str | None = None) -> Any:
    """Reduce ``x`` element-wise across all ranks; every rank receives the result.

    Parameters
    ----------
    x : array
        numpy array, torch CPU tensor, or buffer; contiguous, of a supported dtype.
    op : {"sum", "prod", "min", "max", "avg"}
        ``avg`` divides the sum by the number of ranks (integers: truncating division).
    out : array, optional
        Where the result goes; same dtype and element count as ``x``. Default: ``x`` itself
        (in place).
    comm : Communicator, optional
        Default: the communicator made by :func:`mscomm.init`.
    timeout : float, optional
        Seconds this call may take (default: the communicator's timeout).
    algorithm : {"auto", "oneshot", "rsag", "ring"}, optional
        Overrides the tuning table (see docs/algorithms.md).

    Returns
    -------
    The array holding the result (``out``, or ``x`` when in place).

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
        if dst.dtype != src.dtype or dst.count != src.count:
            raise InvalidArgument(
                f"allreduce: out has {dst.count} x {dst.dtype} but x has {src.count} x {src.dtype}; "
                "they must match"
            )
        result = out
    _core.allreduce(comm._core, src.ptr, dst.ptr, src.count, src.dtype, opname,
                    -1.0 if timeout is None else float(timeout), algorithm or "")
    return result
