"""Registered buffers: ``comm.register(x)`` once, then collectives on ``x`` skip the staging copy.

Registration is collective: every rank registers one buffer (sizes may differ), in the same
order. The buffer's memory pages (rounded out to whole pages) move into shared memory in place,
so it keeps its address and contents while same-host peers map it. A later collective whose
input and output lie inside registered buffers on every rank of a one-host communicator then
reads the peers' buffers where they are (the "direct" path in docs/algorithms.md): allreduce,
allgather, alltoall, reduce_scatter and broadcast copy once instead of twice. Anything else
(unregistered buffers, messages below MSCOMM_DIRECT_MIN_BYTES, several hosts) works as before.

Two arrays that share a memory page cannot both be registered (small numpy arrays often do):
allocate the ones to register with ``mscomm.empty`` (whole pages of their own), or register one
array and use slices of it. Keep the array's memory alive and in place while it is registered
(the handle holds a reference); do not resize it. A forked child shares the registered pages
with its parent.
"""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

from mscomm import _core
from mscomm.buffers import as_buffer
from mscomm.errors import InvalidArgument


class RegisteredBuffer:
    """What ``Communicator.register`` returns; ``deregister()`` (or leaving a ``with`` block)
    makes the pages private again, contents kept. Local: no other rank needs to take part."""

    def __init__(self, comm: Any, array: Any, handle: int, nbytes: int) -> None:
        self.comm = comm
        self.array = array  # holds the memory while it is registered
        self.handle = handle
        self.nbytes = nbytes

    @property
    def registered(self) -> bool:
        return self.handle in self.comm._registered

    def deregister(self) -> None:
        if self.comm._registered.pop(self.handle, None) is None:
            return
        self.comm._drain()
        _core.deregister_buffer(self.comm._core, self.handle)
        self.array = None

    def __enter__(self) -> "RegisteredBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.deregister()

    def __repr__(self) -> str:
        state = "registered" if self.registered else "deregistered"
        return f"<mscomm.RegisteredBuffer #{self.handle} {self.nbytes} bytes, {state}>"


def empty(shape: Any, dtype: Any = np.float32) -> np.ndarray:
    """An uninitialized numpy array on memory pages of its own (anonymous mmap), so it can be
    registered whatever else is registered."""
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    region = mmap.mmap(-1, max(1, count * dt.itemsize))
    return np.frombuffer(region, dt, count).reshape(shape)


def register(comm: Any, x: Any, timeout: float | None = None) -> RegisteredBuffer:
    from mscomm.collectives import _timeout

    buf = as_buffer(x, writable=True, what="register")
    if buf.nbytes == 0:
        raise InvalidArgument("register: the array is empty; register an array of at least one element")
    comm._drain()
    handle = _core.register_buffer(comm._core, buf.ptr, buf.nbytes, _timeout(timeout))
    reg = RegisteredBuffer(comm, buf.obj, handle, buf.nbytes)
    comm._registered[handle] = reg
    return reg
