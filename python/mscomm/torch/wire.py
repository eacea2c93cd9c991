"""How a torch tensor travels through the mscomm core and comes back ("wire" form).

The core moves and reduces eight dtypes (``mscomm.SUPPORTED_DTYPES``). A tensor of one of them
travels as a flat view of itself: no copy when it is contiguous. Every other dtype is either
encoded exactly or refused, never reduced approximately:

* Data movement (broadcast, gathers, scatters, all-to-all, send/recv) only copies bytes, so any
  dtype travels as its bytes (uint8).
* Reductions:

  - bool travels as uint8; SUM and BOR become max, PRODUCT and BAND become min (torch's own bool
    arithmetic saturates the same way);
  - int16 and uint16 are widened to int32, uint32 to int64 (SUM, PRODUCT, MIN, MAX; the wrapped
    result modulo 2^16 or 2^32 is the same as torch's);
  - complex travels as (real, imag) pairs for SUM and AVG;
  - BAND, BOR and BXOR on integers: every rank's input is gathered and reduced locally
    (``Reduction.local``), which is exact for any integer dtype.

Anything else (PREMUL_SUM, MIN on complex, AVG on integers that must be widened, ...) raises
``mscomm.InvalidArgument`` naming the operation, the dtype and the op.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.distributed as dist

from mscomm.errors import InvalidArgument

_WIDEN = {torch.int16: torch.int32, torch.uint16: torch.int32, torch.uint32: torch.int64}
_COMPLEX = (torch.complex64, torch.complex128)
_INTEGER = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.uint16, torch.uint32,
            torch.uint64, torch.bool)

# The core's names of the dtypes it moves and reduces itself.
CORE_DTYPES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32",
               torch.float64: "float64", torch.int8: "int8", torch.int32: "int32", torch.int64: "int64",
               torch.uint8: "uint8"}
_NATIVE = tuple(CORE_DTYPES)

_R = dist.ReduceOp.RedOpType
OP_NAMES = {_R.SUM: "sum", _R.PRODUCT: "prod", _R.MIN: "min", _R.MAX: "max", _R.AVG: "avg"}
_BITWISE = {_R.BAND: torch.bitwise_and, _R.BOR: torch.bitwise_or, _R.BXOR: torch.bitwise_xor}
_BOOL_OPS = {_R.SUM: "max", _R.BOR: "max", _R.MAX: "max", _R.PRODUCT: "min", _R.BAND: "min", _R.MIN: "min"}


class Encoding(NamedTuple):
    """A dtype's wire form: ``to_wire`` maps a flat contiguous tensor to the tensor the core sees
    (a view when ``is_view``), ``from_wire`` maps it back to the original dtype."""

    to_wire: Callable[[torch.Tensor], torch.Tensor]
    from_wire: Callable[[torch.Tensor], torch.Tensor]
    is_view: bool
    per_element: int  # wire elements per tensor element


class Reduction(NamedTuple):
    """How one (dtype, ReduceOp) pair is reduced: by the core with ``op``, or, when ``local`` is
    set, by gathering every rank's input and folding it with ``local`` (a torch binary function)."""

    encoding: Encoding
    op: str | None
    local: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


IDENTITY = Encoding(_identity, _identity, True, 1)


def _bytes_of(dtype: torch.dtype) -> Encoding:
    return Encoding(lambda t: t.view(torch.uint8), lambda w: w.view(dtype), True, dtype.itemsize)


def _widened(dtype: torch.dtype, wide: torch.dtype) -> Encoding:
    return Encoding(lambda t: t.to(wide), lambda w: w.to(dtype), False, 1)


def _complex_pairs(dtype: torch.dtype) -> Encoding:
    return Encoding(lambda t: torch.view_as_real(t).view(-1), lambda w: torch.view_as_complex(w.view(-1, 2)), True, 2)


def movement(dtype: torch.dtype) -> Encoding:
    """The wire form for collectives that only move data."""
    return IDENTITY if dtype in _NATIVE else _bytes_of(dtype)


def op_type(op: object) -> object:
    """The ``ReduceOp.RedOpType`` of a ``ReduceOp`` or ``RedOpType``."""
    return getattr(op, "op", op)


def reduction(what: str, dtype: torch.dtype, op: object) -> Reduction:
    """How to reduce ``dtype`` with ``op`` exactly, or raise InvalidArgument."""
    kind = op_type(op)
    if kind in _BITWISE:
        if dtype == torch.bool:
            return Reduction(_bytes_of(dtype), _BOOL_OPS[kind], None) if kind in _BOOL_OPS else \
                Reduction(movement(dtype), None, _BITWISE[kind])
        if dtype in _INTEGER:
            return Reduction(movement(dtype), None, _BITWISE[kind])
        raise _refuse(what, dtype, kind, "bitwise ops need an integer or bool tensor")
    if kind not in OP_NAMES:
        raise _refuse(what, dtype, kind, "this op is not supported by the mscomm backend (PREMUL_SUM is NCCL-only)")
    name = OP_NAMES[kind]
    if dtype in _NATIVE:
        return Reduction(IDENTITY, name, None)
    if dtype == torch.bool and kind in _BOOL_OPS:
        return Reduction(_bytes_of(dtype), _BOOL_OPS[kind], None)
    if dtype in _WIDEN and kind != _R.AVG:
        return Reduction(_widened(dtype, _WIDEN[dtype]), name, None)
    if dtype in _COMPLEX and kind in (_R.SUM, _R.AVG):
        return Reduction(_complex_pairs(dtype), name, None)
    raise _refuse(what, dtype, kind, "supported: float16, bfloat16, float32, float64, int8, int32, int64, "
                                     "uint8 with SUM/PRODUCT/MIN/MAX/AVG; see mscomm.torch.wire")


def _refuse(what: str, dtype: torch.dtype, kind: object, why: str) -> InvalidArgument:
    name = getattr(kind, "name", str(kind))
    return InvalidArgument(f"{what}: cannot reduce {dtype} with ReduceOp.{name} on the mscomm backend; {why}")


def fold(local: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], gathered: torch.Tensor, size: int) -> torch.Tensor:
    """Reduce ``size`` equal blocks of ``gathered`` (rank order) with a binary torch function."""
    blocks = gathered.view(size, -1)
    acc = blocks[0].clone()
    for b in blocks[1:]:
        acc = local(acc, b)
    return acc
