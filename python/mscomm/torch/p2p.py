"""Point to point through torch: send/recv and the reorder queue that makes posted exchanges
(``batch_isend_irecv``) match. See process_group.py's docstring."""

from __future__ import annotations

import concurrent.futures
from typing import Callable, Sequence

import torch

from mscomm.errors import InvalidArgument
from mscomm.torch import wire
from mscomm.torch.staging import _as_wire, _check_device, _single, _Staged
from mscomm.torch.work import MscommWork

Tensor = torch.Tensor


class P2PMixin:
    """``isend``/``irecv`` queued, then flushed in one global order."""

    def _queue_p2p(self, peer: int, sending: bool, body: Callable[[], None], result: list[Tensor]) -> MscommWork:
        me = self._comm.rank
        first = sending == (me < peer)          # lower rank sends first, higher rank receives first
        key = (min(me, peer), max(me, peer), 0 if first else 1, len(self._p2p))
        done: concurrent.futures.Future = concurrent.futures.Future()
        self._p2p.append((key, body, done))
        return MscommWork(done, result, before_wait=self._flush_p2p)

    def _flush_p2p(self) -> None:
        if not self._p2p:
            return
        batch = sorted(self._p2p, key=lambda item: item[0])
        self._p2p = []

        def run() -> None:
            for _, body, done in batch:
                if not done.set_running_or_notify_cancel():
                    continue
                try:
                    body()
                except BaseException as e:  # noqa: BLE001 - handed to the Work, raised by wait()
                    done.set_exception(e)
                else:
                    done.set_result(None)

        self._pending = self._submit(run)


    # -- point to point -----------------------------------------------------------------------
    def send(self, tensors: Sequence[Tensor], dstRank: int, tag: int = 0) -> MscommWork:  # noqa: N803
        t = _single(tensors, "send")
        _check_device(t)
        src = _as_wire(t, wire.movement(t.dtype))
        comm, seconds = self._comm, self._timeout
        return self._queue_p2p(int(dstRank), True, lambda: comm.send(src, int(dstRank), int(tag), timeout=seconds), [t])

    def recv(self, tensors: Sequence[Tensor], srcRank: int, tag: int = 0) -> MscommWork:  # noqa: N803
        t = _single(tensors, "recv")
        _check_device(t)
        dst = _Staged(t, wire.movement(t.dtype), keep_contents=False)
        comm, seconds = self._comm, self._timeout

        def body() -> None:
            comm.recv(dst.wire, int(srcRank), int(tag), timeout=seconds)
            dst.finish()

        return self._queue_p2p(int(srcRank), False, body, [t])

    def recv_anysource(self, tensors: Sequence[Tensor], tag: int = 0) -> MscommWork:
        raise InvalidArgument("mscomm backend: recv without a source rank is not supported (transfers between two "
                              "ranks match in order); pass src= to dist.recv / dist.irecv")

