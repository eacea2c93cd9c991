"""Turn user arrays into (pointer, count, dtype) without copying.

numpy arrays, torch CPU tensors, and any object with the buffer protocol or ``__dlpack__`` are
accepted. Arrays must be contiguous (one block of memory); outputs must be writable.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from mscomm import _core
from mscomm.errors import InvalidArgument

SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int32", "int64", "uint8")


class Buffer(NamedTuple):
    """A validated view of a user array: where it lives, how many elements, of which type."""

    ptr: int
    count: int
    dtype: str
    obj: Any  # keeps the array alive while C++ uses the pointer

    @property
    def nbytes(self) -> int:
        return self.count * _ITEMSIZE[self.dtype]


_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8, "int8": 1, "int32": 4, "int64": 8, "uint8": 1}


def _unsupported(dtype: object, what: str) -> InvalidArgument:
    return InvalidArgument(
        f"{what}: dtype {dtype} is not supported; use one of {', '.join(SUPPORTED_DTYPES)}"
    )


def _numpy_dtypes() -> dict[np.dtype, str]:
    table = {np.dtype(n): n for n in SUPPORTED_DTYPES if n != "bfloat16"}
    try:
        import ml_dtypes

        table[np.dtype(ml_dtypes.bfloat16)] = "bfloat16"
    except ImportError:
        pass
    return table


# Keyed by dtype object: looking up dtype.name costs microseconds on every call.
_NUMPY_DTYPES = _numpy_dtypes()


_TORCH_TENSOR_TYPES: set[type] = set()  # torch tensor classes seen (checked first)
_TORCH_DTYPES: dict[Any, str] = {}  # torch.dtype -> name, filled on first use (import mscomm never imports torch)


def _torch_dtype_name(dtype: Any) -> str | None:
    if not _TORCH_DTYPES:
        import torch

        _TORCH_DTYPES.update({getattr(torch, n): n for n in SUPPORTED_DTYPES})
    return _TORCH_DTYPES.get(dtype)


def _from_torch(t: Any, writable: bool, what: str) -> Buffer:
    name = _torch_dtype_name(t.dtype)
    if name is not None and t.is_cpu and not t.is_sparse and t.is_contiguous() and not t.is_quantized:
        return Buffer(t.data_ptr(), t.numel(), name, t)  # the common case, checked in ~0.5 us
    if t.device.type != "cpu":
        raise InvalidArgument(
            f"{what}: tensor is on device '{t.device}'; this build of mscomm serves CPU tensors only "
            "(move it with .cpu() or use a CUDA build)"
        )
    if t.is_sparse or getattr(t, "is_quantized", False):
        raise InvalidArgument(f"{what}: sparse and quantized tensors are not supported")
    if not t.is_contiguous():
        raise InvalidArgument(
            f"{what}: tensor is not contiguous (shape {tuple(t.shape)}, stride {tuple(t.stride())}); "
            "pass t.contiguous() and copy the result back"
        )
    raise _unsupported(t.dtype, what)


def _from_numpy(a: np.ndarray, writable: bool, what: str) -> Buffer:
    name = _NUMPY_DTYPES.get(a.dtype)
    if name is None:
        raise _unsupported(a.dtype, what)
    flags = a.flags
    if not (flags.c_contiguous or flags.f_contiguous):
        raise InvalidArgument(
            f"{what}: array is not contiguous (shape {a.shape}, strides {a.strides}); "
            "pass np.ascontiguousarray(x) and copy the result back"
        )
    if writable and not flags.writeable:
        raise InvalidArgument(f"{what}: array is read-only; pass a writable array (or out=) to receive the result")
    ptr = _core.buffer_address(a) if a.size else 0
    if not ptr and a.size:
        ptr = a.__array_interface__["data"][0]
    return Buffer(ptr, a.size, name, a)


def as_buffer(x: Any, *, writable: bool, what: str) -> Buffer:
    """Validate ``x`` and describe its memory.

    Parameters
    ----------
    x : numpy.ndarray, torch.Tensor, or an object with the buffer protocol or ``__dlpack__``
    writable : bool
        Whether the collective writes into ``x``.
    what : str
        Names the argument in error messages, e.g. ``"allreduce: out"``.

    Raises
    ------
    InvalidArgument
        Unsupported type or dtype, non-contiguous or read-only memory.
    """
    cls = type(x)
    if cls in _TORCH_TENSOR_TYPES:
        return _from_torch(x, writable, what)
    if isinstance(x, np.ndarray):
        return _from_numpy(x, writable, what)
    if cls.__module__.split(".")[0] == "torch" and hasattr(x, "data_ptr"):
        _TORCH_TENSOR_TYPES.add(cls)
        return _from_torch(x, writable, what)
    if hasattr(x, "__dlpack__"):
        try:
            return _from_numpy(np.from_dlpack(x), writable, what)
        except (TypeError, BufferError, RuntimeError) as e:
            raise InvalidArgument(f"{what}: cannot view {type(x).__name__} through DLPack: {e}") from e
    try:
        view = memoryview(x)
    except TypeError:
        raise InvalidArgument(
            f"{what}: expected a numpy array, torch tensor or buffer, got {type(x).__name__}; "
            "wrap Python data with numpy.asarray(...)"
        ) from None
    if writable and view.readonly:
        raise InvalidArgument(f"{what}: buffer is read-only; pass a writable array")
    return _from_numpy(np.asarray(view), writable, what)
