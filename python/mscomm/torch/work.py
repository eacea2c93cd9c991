"""The torch ``Work`` handle of an mscomm operation."""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist


class MscommWork(dist.Work):
    """A finished or running operation, as torch expects it.

    ``wait()`` blocks until the operation is done and raises its error; ``get_future()`` returns a
    ``torch.futures.Future`` that holds the output tensors (DDP's reducer reads it) or the error.

    Parameters
    ----------
    future : concurrent.futures.Future, optional
        The operation running on the process group's worker thread; None when it already ran.
    result : list of torch.Tensor
        What the future holds once the operation succeeds.
    before_wait : callable, optional
        Called before any query (queued send/recv: starts the queue; see process_group.py).
    """

    def __init__(self, future: "concurrent.futures.Future[Any] | None", result: list[torch.Tensor],
                 before_wait: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._cf = future
        self._before_wait = before_wait
        self._result = result
        self.source: list[int] = []  # a receive's source rank, once known (recv_anysource)
        # A finished operation makes its torch future only when asked (plain dist.* calls never
        # ask; making one costs microseconds on every call).
        self._fut: torch.futures.Future | None = None
        if future is not None:
            self._fut = torch.futures.Future()
            future.add_done_callback(self._settle)

    def _settle(self, cf: "concurrent.futures.Future[Any]") -> None:
        error = cf.exception()
        if error is None:
            self._fut.set_result(self._result)
        else:
            self._fut.set_exception(error)

    def _start(self) -> None:
        if self._before_wait is not None:
            self._before_wait()

    def wait(self, timeout: timedelta = timedelta(0)) -> bool:
        self._start()
        if self._cf is not None:
            seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout or 0)
            self._cf.result(seconds if seconds > 0 else None)
        return True

    def is_completed(self) -> bool:
        self._start()
        return self._cf is None or self._cf.done()

    def is_success(self) -> bool:
        return self.is_completed() and (self._cf is None or self._cf.exception() is None)

    def exception(self) -> BaseException | None:
        self._start()
        return None if self._cf is None else self._cf.exception()

    def result(self) -> list[torch.Tensor]:
        self.wait()
        return self._result

    def _source_rank(self) -> int:
        """The rank a receive got its data from (torch's ``work._source_rank()``, ``dist.recv``'s
        return value without ``src``)."""
        self.wait()
        if not self.source:
            raise RuntimeError("mscomm backend: _source_rank() is only defined for receives")
        return self.source[0]

    def synchronize(self) -> None:
        self.wait()

    def get_future(self) -> torch.futures.Future:
        self._start()
        if self._fut is None:
            self._fut = torch.futures.Future()
            self._fut.set_result(self._result)
        return self._fut

    def __repr__(self) -> str:
        return f"<MscommWork {'done' if self.is_completed() else 'pending'}>"
