"""Point to point through torch: send/recv and the reorder queue that makes posted exchanges
(``batch_isend_irecv``) match. See process_group.py's docstring.

Receiving from any source: the core matches the transfers between two ranks as one ordered
sequence and has no wildcard. So every send first announces itself to its receiver (a few bytes
through the communicator's bootstrap mailbox: the tag), and every receive takes the next
announcement of its source off the mailbox, keeping the two sequences in step. A receive without a
source waits for the first peer whose next announced send carries the wanted tag, then receives
from that peer like any other receive.
"""

from __future__ import annotations

import collections
import concurrent.futures
import time
from typing import Callable, Sequence

import torch

from mscomm.errors import Timeout
from mscomm.torch import wire
from mscomm.torch.staging import _as_wire, _check_device, _single, _Staged
from mscomm.torch.work import MscommWork

Tensor = torch.Tensor


# Bootstrap mailbox tag of send announcements ("mscomm" + 1; each group has its own communicator).
ANNOUNCE_TAG = 0x6D73636F6D6D0001


class P2PMixin:
    """``isend``/``irecv`` queued, then flushed in one global order."""

    def _announced(self, peer: int) -> collections.deque:
        """Announcements of ``peer`` taken off the mailbox (by a search for a source) but not yet
        matched by a receive, oldest first."""
        table = self.__dict__.setdefault("_announcements", {})
        return table.setdefault(peer, collections.deque())

    def _next_announcement(self, peer: int, seconds: float) -> int | None:
        """The tag of ``peer``'s next unmatched send, waiting up to ``seconds``; None when none came."""
        seen = self._announced(peer)
        if not seen:
            try:
                seen.append(int.from_bytes(self._comm.bootstrap.recv(peer, ANNOUNCE_TAG, seconds), "little",
                                           signed=True))
            except Timeout:
                return None
        return seen[0]

    def _take_announcement(self, peer: int, seconds: float) -> None:
        if self._next_announcement(peer, seconds) is None:
            raise Timeout(f"mscomm backend: recv on rank {self._comm.rank} from rank {peer} timed out after "
                          f"{seconds:g} s: rank {peer} did not send")
        self._announced(peer).popleft()

    def _find_source(self, tag: int, seconds: float) -> int:
        """The first peer whose next send carries ``tag`` (any-source receive)."""
        me, size = self._comm.rank, self._comm.size
        peers = [p for p in range(size) if p != me]
        if not peers:
            raise Timeout("mscomm backend: recv from any source in a group of one rank")
        deadline = time.monotonic() + seconds
        step = 0.05 if len(peers) == 1 else 0.002
        while True:
            busy = False
            for p in peers:
                next_tag = self._next_announcement(p, step)
                if next_tag == tag:
                    return p
                busy = busy or next_tag is not None
            if busy:
                time.sleep(0.001)  # a send of another tag waits for its own receive: do not spin on it
            if time.monotonic() >= deadline:
                raise Timeout(f"mscomm backend: recv from any source on rank {me} (tag {tag}) timed out after "
                              f"{seconds:g} s: no rank sent to it")

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
                    done.set_exception(self._explain(e))
                else:
                    done.set_result(None)

        self._pending = self._submit(run)


    # -- point to point -----------------------------------------------------------------------
    def send(self, tensors: Sequence[Tensor], dstRank: int, tag: int = 0) -> MscommWork:  # noqa: N803
        t = _single(tensors, "send")
        _check_device(t)
        src = _as_wire(t, wire.movement(t.dtype))
        comm, seconds, dst, tag = self._comm, self._timeout, int(dstRank), int(tag)
        announcement = tag.to_bytes(8, "little", signed=True)

        def body() -> None:
            comm.bootstrap.send(dst, ANNOUNCE_TAG, announcement)
            comm.send(src, dst, tag, timeout=seconds)

        return self._queue_p2p(dst, True, body, [t])

    def _recv_body(self, t: Tensor, source: Callable[[], int], tag: int, found: list[int]) -> Callable[[], None]:
        dst = _Staged(t, wire.movement(t.dtype), keep_contents=False)
        comm, seconds = self._comm, self._timeout

        def body() -> None:
            peer = source()
            self._take_announcement(peer, seconds)
            comm.recv(dst.wire, peer, tag, timeout=seconds)
            dst.finish()
            found.append(peer)

        return body

    def recv(self, tensors: Sequence[Tensor], srcRank: int, tag: int = 0) -> MscommWork:  # noqa: N803
        t = _single(tensors, "recv")
        _check_device(t)
        peer, found = int(srcRank), []
        work = self._queue_p2p(peer, False, self._recv_body(t, lambda: peer, int(tag), found), [t])
        work.source = found
        return work

    def recv_anysource(self, tensors: Sequence[Tensor], tag: int = 0) -> MscommWork:
        """A receive from whichever rank sends to this one first with ``tag``; the Work's
        ``_source_rank()`` names it. Runs after every queued send/recv of this group."""
        t = _single(tensors, "recv")
        _check_device(t)
        tag, found, seconds = int(tag), [], self._timeout
        body = self._recv_body(t, lambda: self._find_source(tag, seconds), tag, found)
        self._flush_p2p()
        work = MscommWork(self._submit(self._guard(body)), [t])
        self._pending = work._cf
        work.source = found
        return work
