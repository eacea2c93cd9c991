"""The mscomm error hierarchy; C++ errors arrive as these classes."""

from __future__ import annotations


class MscommError(Exception):
    """Base class of every error mscomm raises."""


class InvalidArgument(MscommError, ValueError):
    """Bad input: wrong dtype, non-contiguous or read-only array, arguments that differ across ranks."""


class Timeout(MscommError, TimeoutError):
    """A blocking call ran out of time; the message names the operation, the rank and who was silent."""


class PeerFailure(MscommError, ConnectionError):
    """A peer died, disconnected, or reported an error that ends the collective on every rank."""


class AuthenticationError(MscommError, PermissionError):
    """A peer did not present the job's secret (or this process used the wrong unique id)."""


class Aborted(MscommError, ConnectionAbortedError):
    """The communicator was aborted with ``comm.abort()``."""


class InternalError(MscommError, RuntimeError):
    """A bug or a failed system call inside mscomm."""


_BY_KIND = {
    0: InternalError,
    1: InvalidArgument,
    2: Timeout,
    3: PeerFailure,
    4: AuthenticationError,
    5: Aborted,
}


def from_kind(kind: int) -> type[MscommError]:
    """The Python class for a C++ ``ErrorKind`` value."""
    return _BY_KIND.get(kind, InternalError)
