"""Fast paths: a plain synchronous ``dist.all_reduce`` / ``dist.all_to_all_single`` on contiguous
CPU tensors of a core dtype goes straight to the public collective (``mscomm.allreduce``,
``mscomm.alltoall``, ``mscomm.alltoallv``) on the tensor itself, skipping the general path's
staging, per-call closures and Work bookkeeping."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from mscomm import collectives
from mscomm.errors import PeerFailure, Timeout
from mscomm.torch import wire
from mscomm.torch.staging import _plain, _row_counts
from mscomm.torch.work import MscommWork

Tensor = torch.Tensor


class FastPathMixin:
    # A plain synchronous dist.all_reduce or dist.all_to_all_single on contiguous CPU tensors of a
    # dtype the core handles natively calls the public collective on the tensor itself. The general
    # path costs ~20 us of Python per call, and after a large message that code runs with cold
    # caches (several times slower); with 4 ranks on 2 cores every rank's overhead delays the
    # others too.
    def _inline(self, opts: Any) -> bool:
        """Whether a call may run right now: synchronous, nothing of this group queued or in flight
        (the communicator waits for its own asynchronous calls itself)."""
        if opts is None or getattr(opts, "asyncOp", True) or self._p2p:
            return False
        self._drain()
        return True

    def _fast_allreduce(self, tensors: Any, opts: Any) -> MscommWork | None:
        if type(tensors) is not list or len(tensors) != 1 or not self._inline(opts):
            return None
        t = tensors[0]
        op = wire.OP_NAMES.get(wire.op_type(opts.reduceOp))
        if op is None or t.dtype not in wire.CORE_DTYPES or not _plain(t):
            return None
        try:
            collectives.allreduce(t, op, comm=self._comm, timeout=self._seconds(opts))
        except (PeerFailure, Timeout) as e:
            raise self._explain(e) from e
        return MscommWork(None, tensors)

    def _fast_all_to_all(self, output: Tensor, input: Tensor, output_split_sizes: Sequence[int],  # noqa: A002
                         input_split_sizes: Sequence[int], opts: Any) -> MscommWork | None:
        if output.dtype != input.dtype or not self._inline(opts) or not (_plain(output) and _plain(input)):
            return None
        size = self._comm.size
        enc = wire.movement(input.dtype)  # other dtypes as bytes, as in the general path
        src, dst = (input, output) if input.dtype in wire.CORE_DTYPES else \
            (enc.to_wire(input.view(-1)), enc.to_wire(output.view(-1)))
        try:
            if not output_split_sizes and not input_split_sizes:  # as in the general path: by the arguments
                if src.numel() % size or output.numel() != input.numel():
                    return None  # the general path names the problem
                collectives.alltoall(src, out=dst, comm=self._comm, timeout=self._seconds(opts))
            else:
                send = _row_counts(input, input_split_sizes, size, enc.per_element)
                recv = _row_counts(output, output_split_sizes, size, enc.per_element)
                if send is None or recv is None:
                    return None
                collectives.alltoallv(src, send, recv, out=dst, comm=self._comm, timeout=self._seconds(opts))
        except (PeerFailure, Timeout) as e:
            raise self._explain(e) from e
        return MscommWork(None, [output])
