"""The selection table from Python: which algorithms a collective has, and which would run a call.

Every algorithm of every collective is a row of one table in the C++ core
(csrc/src/collectives/selection.cpp; docs/algorithms.md describes each row). ``algorithm=`` on a
collective, or ``MSCOMM_<COLLECTIVE>_ALGO``, picks a row by name; plans loaded with
``comm.load_plan`` add ``plan:<name>`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mscomm import _core, _default
from mscomm.buffers import as_buffer
from mscomm.errors import InvalidArgument

COLLECTIVES = ("allreduce", "reduce", "broadcast", "allgather", "reduce_scatter", "alltoall", "alltoallv",
               "gather", "scatter", "barrier")


@dataclass(frozen=True)
class Algorithm:
    """One row of the selection table, judged for one call."""

    name: str
    summary: str
    runs: bool | None = None  # None: not judged (no call given)
    reason: str = ""          # why it cannot run the call
    chosen: bool = False      # the row the call would take (with the requested algorithm)
    automatic: bool = False   # the row the automatic choice takes

    def __str__(self) -> str:
        mark = "*" if self.chosen else " "
        if self.runs is None:
            return f"{mark} {self.name:<14} {self.summary}"
        state = "runs" if self.runs else f"cannot: {self.reason}"
        auto = " (automatic choice)" if self.automatic else ""
        return f"{mark} {self.name:<14} {state}{auto}"


def _check(collective: str) -> str:
    if collective not in COLLECTIVES:
        raise InvalidArgument(f"unknown collective {collective!r}; choose one of {', '.join(COLLECTIVES)}")
    return collective


def table(collective: str) -> list[Algorithm]:
    """The built-in rows of ``collective`` in the order of the automatic choice; needs no communicator."""
    return [Algorithm(name, summary) for name, summary in _core.algorithm_table(_check(collective))]


def algorithms(collective: str, x: Any = None, *, out: Any = None, comm: Any = None,
               algorithm: str | None = None) -> list[Algorithm]:
    """Every row of ``collective``'s selection table, judged for the call ``collective(x, out=out)``:
    whether it would run and, if not, why; ``chosen`` marks the row the call takes (with
    ``algorithm``, default the automatic choice), ``automatic`` the automatic choice.

    ``x`` is the call's input as the collective takes it (allreduce, reduce, broadcast: the buffer;
    allgather, gather: this rank's part; reduce_scatter, alltoall, scatter: the whole input).
    Without ``x`` the call is judged for an empty message. Collective on a communicator's first
    use (it connects the collectives, as the first collective would).

    >>> import mscomm
    >>> [a.name for a in mscomm.selection.table("allgather")]
    ['ring', 'direct', 'staged']
    """
    _check(collective)
    comm = _default.get() if comm is None else comm
    size, rank = comm.size, comm.rank
    src = as_buffer(x, writable=False, what="algorithms: x") if x is not None else None
    dst = as_buffer(out, writable=False, what="algorithms: out") if out is not None else None
    in_ptr, in_bytes = (src.ptr, src.nbytes) if src else (0, 0)
    out_ptr, out_bytes = (dst.ptr, dst.nbytes) if dst else (0, 0)
    message = in_bytes
    in_place = dst is None or out_ptr == in_ptr
    if collective in ("allreduce", "reduce", "broadcast"):
        if dst is None:
            out_ptr, out_bytes = in_ptr, in_bytes
    elif collective in ("allgather", "gather"):
        in_place = dst is not None and in_ptr == out_ptr + rank * in_bytes
    elif collective in ("reduce_scatter", "alltoall", "scatter"):
        message = in_bytes // size
        in_place = dst is not None and out_ptr == in_ptr + rank * message
    if collective == "broadcast":
        in_ptr, in_bytes = 0, 0  # broadcast reads only the buffer it writes
    rows = _core.algorithms(comm._core, collective, message, in_ptr, in_bytes, out_ptr, out_bytes, in_place,
                            algorithm or "")
    return [Algorithm(**r) for r in rows]


def format_table(rows: list[Algorithm]) -> str:
    """The rows as lines for a terminal (``*`` marks the chosen row)."""
    return "\n".join(str(r) for r in rows)
