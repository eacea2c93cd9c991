"""The group's executor: how an operation's ``body`` runs (inline or on the group's one worker
thread, in issue order) and what Work it returns. See process_group.py's docstring."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta
from typing import Any, Callable

import torch

from mscomm.torch.work import MscommWork

Tensor = torch.Tensor


class ExecutorMixin:
    """``_issue``/``_run``: run an operation's body synchronously or on the worker thread."""

    def _seconds(self, opts: Any) -> float:
        t = getattr(opts, "timeout", None)
        if isinstance(t, timedelta) and t.total_seconds() > 0:
            return t.total_seconds()
        return self._timeout

    def _issue(self, async_op: bool, body: Callable[[], None], result: list[Tensor]) -> MscommWork:
        self._flush_p2p()
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

