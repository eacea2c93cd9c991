"""Work: the handle of a collective started with ``async_op=True``."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any


class Work:
    """A collective running in the communicator's background thread.

    Collectives of one communicator run in the order they were issued, synchronous ones included
    (a synchronous call first waits for the asynchronous ones before it).
    """

    def __init__(self, future: "Future[Any]") -> None:
        self._future = future

    def wait(self, timeout: float | None = None) -> Any:
        """Block until done; return the result array, or raise the collective's error.

        Raises ``TimeoutError`` if ``timeout`` seconds pass first (the collective keeps running).
        """
        return self._future.result(timeout)

    def is_completed(self) -> bool:
        return self._future.done()

    def exception(self) -> BaseException | None:
        """The error the collective raised (None if it succeeded); waits for it to finish."""
        return self._future.exception()

    def __repr__(self) -> str:
        return f"<mscomm.Work {'done' if self.is_completed() else 'pending'}>"
