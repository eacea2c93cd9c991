"""Fast paths: plain synchronous ``dist.all_reduce`` / ``dist.all_to_all_single`` on contiguous
CPU tensors of a core dtype go straight to the core."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from mscomm import _core
from mscomm.torch import wire
from mscomm.torch.staging import _plain, _row_counts
from mscomm.torch.work import MscommWork

Tensor = torch.Tensor


class FastPathMixin:
    # -- fast paths ---------------------------------------------------------------------------
    # A plain synchronous dist.all_reduce or dist.all_to_all_single on contiguous CPU tensors of a
    # dtype the core handles natively goes straight to the core. The general path costs ~20 us of
    # Python per call, and after a large message that code runs with cold caches (several times
    # slower); with 4 ranks on 2 cores every rank's overhead delays the others too.
    def _inline(self, opts: Any) -> bool:
        """Whether a call may go to the core right now: synchronous, nothing queued or in flight."""
        if opts is None or getattr(opts, "asyncOp", True) or self._p2p:
            return False
        self._drain()
        self._comm._drain()
        return True

    def _fast_allreduce(self, tensors: Any, opts: Any) -> MscommWork | None:
        if type(tensors) is not list or len(tensors) != 1 or not self._inline(opts):
            return None
        t = tensors[0]
        dtype, op = wire.CORE_DTYPES.get(t.dtype), wire.OP_NAMES.get(wire.op_type(opts.reduceOp))
        if dtype is None or op is None or not _plain(t):
            return None
        p = t.data_ptr()
        _core.allreduce(self._comm._core, p, p, t.numel(), dtype, op, 0, self._seconds(opts), "")
        return MscommWork(None, tensors)

    def _fast_all_to_all(self, output: Tensor, input: Tensor, output_split_sizes: Sequence[int],  # noqa: A002
                         input_split_sizes: Sequence[int], opts: Any) -> MscommWork | None:
        if output.dtype != input.dtype or not self._inline(opts) or not (_plain(output) and _plain(input)):
            return None
        size = self._comm.size
        dtype = wire.CORE_DTYPES.get(input.dtype, "uint8")  # as wire.movement: other dtypes as bytes
        scale = wire.movement(input.dtype).per_element
        if not output_split_sizes and not input_split_sizes:  # as in the general path: by the arguments
            count = input.numel() * scale
            if count % size or output.numel() != input.numel():
                return None  # the general path names the problem
            _core.alltoall(self._comm._core, input.data_ptr(), output.data_ptr(), count // size, dtype, "sum", 0,
                           self._seconds(opts), "")
        else:
            send = _row_counts(input, input_split_sizes, size, scale)
            recv = _row_counts(output, output_split_sizes, size, scale)
            if send is None or recv is None:
                return None
            _core.alltoallv(self._comm._core, input.data_ptr(), send, output.data_ptr(), recv, dtype,
                            self._seconds(opts))
        return MscommWork(None, [output])

