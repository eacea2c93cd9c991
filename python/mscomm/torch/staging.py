"""Output staging and argument adaptation: torch tensors as the flat wire tensors the core sees
(see ``wire.py``), and torch's argument shapes checked and turned into mscomm's."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from mscomm.errors import InvalidArgument
from mscomm.torch import wire

Tensor = torch.Tensor


class _Staged:
    """An output tensor as the core sees it: ``wire`` (a view of the tensor when possible) and,
    after the collective, ``finish()`` to copy the result back when ``wire`` is a separate copy."""

    def __init__(self, t: Tensor, enc: wire.Encoding, keep_contents: bool = True) -> None:
        self.t, self.enc = t, enc
        contiguous = t.is_contiguous()
        if contiguous:
            flat = t.view(-1)
        elif keep_contents:
            flat = t.contiguous().view(-1)
        else:
            flat = torch.empty(t.numel(), dtype=t.dtype)
        self.wire = enc.to_wire(flat)
        self.direct = contiguous and enc.is_view

    def finish(self) -> None:
        if not self.direct:
            self.t.copy_(self.enc.from_wire(self.wire).view(self.t.shape))


def _as_wire(t: Tensor, enc: wire.Encoding) -> Tensor:
    """An input tensor's wire form (flat, contiguous; a copy only when it must be)."""
    _check_device(t)
    return enc.to_wire(t.contiguous().view(-1))


def _check_cpu(t: Tensor) -> None:
    if t.device.type != "cpu":
        raise InvalidArgument(f"mscomm backend: tensor is on '{t.device}'; this build serves CPU tensors only "
                              "(move it with .cpu(), or use a CUDA build of mscomm)")


def _check_device(t: Tensor) -> None:
    _check_cpu(t)
    if t.is_sparse:
        raise InvalidArgument("mscomm backend: sparse tensors are supported by all_reduce (SUM) only; pass "
                              "t.to_dense()")


def _plain(t: Tensor) -> bool:
    """A dense contiguous CPU tensor: the core can take its memory as it is."""
    return t.is_cpu and t.layout is torch.strided and t.is_contiguous()


def _row_counts(t: Tensor, rows: Sequence[int], size: int, scale: int) -> list[int] | None:
    """Wire elements per rank (``scale`` per tensor element) from torch's dim-0 split sizes
    (empty: equal parts), or None when they do not describe ``t``."""
    n0, count = (t.shape[0] if t.dim() else 1), t.numel() * scale
    if not rows:
        return [count // size] * size if count % size == 0 else None
    rows = [int(r) for r in rows]
    if len(rows) != size or sum(rows) != n0 or min(rows) < 0:
        return None
    return [r * (count // n0 if n0 else 0) for r in rows]


def _unpack(flat: Tensor, enc: wire.Encoding, outputs: Sequence[Tensor]) -> None:
    """Copy consecutive slices of a flat wire buffer into ``outputs``."""
    offset = 0
    for t in outputs:
        n = t.numel() * enc.per_element
        t.copy_(enc.from_wire(flat[offset:offset + n]).view(t.shape))
        offset += n


def _single(tensors: Any, what: str) -> Tensor:
    if isinstance(tensors, Tensor):
        return tensors
    if len(tensors) != 1:
        raise InvalidArgument(f"mscomm backend: {what} takes one tensor per process, got {len(tensors)}")
    return tensors[0]

