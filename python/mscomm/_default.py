"""The default communicator: the one :func:`mscomm.init` made, used when a call passes no ``comm``.

Kept apart from the launch code so that the collectives can find it without importing the
launcher detection (and the launcher detection can set it without importing the collectives).
"""

from __future__ import annotations

from typing import Any

from mscomm.errors import InvalidArgument

_current: Any = None


def get() -> Any:
    """The default communicator; InvalidArgument if there is none (or it was closed)."""
    if _current is None or _current.closed:
        raise InvalidArgument("no default communicator: call mscomm.init() first (or pass comm=)")
    return _current


def peek() -> Any:
    """The default communicator if it is open, else None."""
    return _current if _current is not None and not _current.closed else None


def set(comm: Any) -> None:  # noqa: A001 - module-level setter, read as _default.set
    global _current
    _current = comm
