"""The group's executor: how an operation's ``body`` runs (inline or on the group's one worker
thread, in issue order) and what Work it returns. See process_group.py's docstring."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta
from typing import Any, Callable

import torch

from mscomm.errors import PeerFailure, Timeout
from mscomm.torch.work import MscommWork

Tensor = torch.Tensor


LEFT_KEY = "mscomm/left/{}"  # set in the group's store by a rank that shuts the group down


class ExecutorMixin:
    """``_issue``/``_run``: run an operation's body synchronously or on the worker thread."""

    def _left_ranks(self) -> list[int]:
        """The other ranks that have shut this group down (from the group's store; [] when unknown)."""
        store, me = getattr(self, "_store", None), self._comm.rank
        if store is None:
            return []
        try:
            return [r for r in range(self._comm.size) if r != me and store.check([LEFT_KEY.format(r)])]
        except Exception:  # noqa: BLE001 - the store's host may be gone too; then the core's message stands
            return []

    def _explain(self, error: BaseException) -> BaseException:
        """A PeerFailure naming the ranks that left, when ``error`` is a failure they caused."""
        if not isinstance(error, (PeerFailure, Timeout)):
            return error
        left = self._left_ranks()
        if not left:
            return error
        who = f"rank{'s' if len(left) > 1 else ''} {', '.join(map(str, left))}"
        explained = PeerFailure(f"mscomm backend: {who} left the group (shut it down with destroy_process_group, "
                                f"or exited) before rank {self._comm.rank} finished this operation ({error})")
        explained.__cause__ = error
        return explained

    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        """``body``, raising failures caused by a rank that has left as saying so."""

        def guarded() -> None:
            try:
                body()
            except (PeerFailure, Timeout) as e:
                raise self._explain(e) from e

        return guarded

    def _seconds(self, opts: Any) -> float:
        t = getattr(opts, "timeout", None)
        if isinstance(t, timedelta) and t.total_seconds() > 0:
            return t.total_seconds()
        return self._timeout

    def _issue(self, async_op: bool, body: Callable[[], None], result: list[Tensor]) -> MscommWork:
        self._flush_p2p()
        body = self._guard(body)
        if not async_op:
            self._drain()
            body()
            return MscommWork(None, result)
        self._pending = self._submit(body)
        return MscommWork(self._pending, result)

    def _submit(self, body: Callable[[], None]) -> concurrent.futures.Future:
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"mscomm-torch-r{self.rank()}")
        return self._worker.submit(body)

    def _drain(self) -> None:
        pending = self._pending
        if pending is not None and not pending.done():
            concurrent.futures.wait([pending])

    def _run(self, opts: Any, body: Callable[[float], None], result: list[Tensor]) -> MscommWork:
        seconds = self._seconds(opts)
        return self._issue(bool(getattr(opts, "asyncOp", True)), lambda: body(seconds), result)

