"""The torch.distributed backend ``"mscomm"``.

Importing this module registers the backend (``import mscomm`` does it too when torch is
already imported)::

    import torch.distributed as dist
    import mscomm.torch
    dist.init_process_group("mscomm")          # env://, tcp://, store=..., or under torchrun

The creator bootstraps an mscomm Communicator through the per-group store torch hands over:
every rank checks in, rank 0 publishes the communicator's unique id, and a rank that never joins
makes the others raise ``mscomm.Timeout`` within the group timeout. See docs/torch.md.
"""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from typing import Any

import torch.distributed as dist

from mscomm.communicator import Communicator, create_unique_id
from mscomm.errors import Timeout
from mscomm.torch.process_group import ProcessGroupMscomm
from mscomm.torch.work import MscommWork

BACKEND = "mscomm"

__all__ = ["BACKEND", "MscommWork", "ProcessGroupMscomm", "register", "register_tensor"]


def _store_host(store: Any) -> str | None:
    """The host of the TCPStore under ``store`` (through PrefixStores), or None."""
    seen = 0
    while store is not None and seen < 16:
        if isinstance(store, dist.TCPStore):
            return store.host
        store = getattr(store, "underlying_store", None)
        seen += 1
    return None


def _bootstrap_host(store: Any) -> str:
    """An address of this host that the group's other ranks can reach."""
    host = _store_host(store)
    if host in ("127.0.0.1", "localhost", "::1") or (host is None and not isinstance(store, dist.TCPStore)
                                                      and not hasattr(store, "underlying_store")):
        return "127.0.0.1"
    if host and _is_local_address(host):
        return host  # the store's host is this one and reachable there (MASTER_ADDR, emulated hosts)
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _is_local_address(host: str) -> bool:
    """Whether ``host`` is an address of this machine (a socket can bind to it)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def _rendezvous(store: Any, rank: int, size: int, timeout: timedelta) -> str:
    """Check in every rank and share rank 0's unique id; a generation number keeps a store reused
    for a second group of the same name from mixing the two."""
    arrived = store.add("mscomm/arrived", 1)
    generation = (arrived - 1) // size
    uid_key, all_key = f"mscomm/uid/{generation}", f"mscomm/all_arrived/{generation}"
    if rank == 0:
        store.set(uid_key, create_unique_id(_bootstrap_host(store)))
    if arrived == (generation + 1) * size:
        store.set(all_key, b"1")
    # Wait in short steps, counting arrivals as we go: when a rank never comes, the count is known
    # even if the store's host (a rank that timed out first) has exited by the deadline.
    here, deadline = arrived - generation * size, time.monotonic() + timeout.total_seconds()
    while True:
        step = timedelta(seconds=min(0.5, max(0.01, deadline - time.monotonic())))
        try:
            store.wait([all_key], step)
            return store.get(uid_key).decode()
        except (RuntimeError, dist.DistError) as e:  # DistStoreError: not everyone yet
            try:
                here = store.add("mscomm/arrived", 0) - generation * size
            except (RuntimeError, dist.DistError):
                pass  # the store is gone: keep the last count
            if time.monotonic() >= deadline:
                raise Timeout(f"mscomm backend: only {min(here, size)} of {size} ranks joined the group within "
                              f"{timeout.total_seconds():.0f} s (this is rank {rank}); check that every rank "
                              f"creates the group ({e})") from e


def _create(store: Any, rank: int, size: int, timeout: timedelta) -> ProcessGroupMscomm:
    """The backend creator torch calls for each new group with this backend."""
    uid = _rendezvous(store, rank, size, timeout)
    seconds = timeout.total_seconds()
    return ProcessGroupMscomm(Communicator(rank, size, uid, timeout=seconds), seconds, store)


def _mscomm_group(group: Any) -> ProcessGroupMscomm:
    pg = dist.group.WORLD if group is None else group
    if isinstance(pg, ProcessGroupMscomm):
        return pg
    try:
        import torch

        backend = pg._get_backend(torch.device("cpu"))
    except (RuntimeError, AttributeError):
        backend = None
    if isinstance(backend, ProcessGroupMscomm):
        return backend
    from mscomm.errors import InvalidArgument

    raise InvalidArgument(f"mscomm.torch.register_tensor: {pg!r} is not an mscomm process group; pass group= a "
                          "group made with backend='mscomm'")


def register_tensor(tensor: Any, group: Any = None, timeout: float | None = None) -> Any:
    """Collective over ``group`` (default: the default group): register ``tensor`` with the
    group's communicator, so that later collectives on it (or on views of it) read the peers'
    tensors through shared mappings instead of single-copy reads or staging (one host; see
    ``mscomm.registration``). Every rank registers one tensor, in the same order. Returns the
    handle; ``handle.deregister()`` undoes it. Keep the tensor alive and unresized meanwhile.

    Worth it for tensors a job reuses (gradient buckets, MoE dispatch buffers) at 1 MiB and more.
    """
    return _mscomm_group(group).communicator.register(tensor, timeout)


def register() -> None:
    """Register the ``"mscomm"`` backend with torch.distributed (idempotent)."""
    if getattr(dist.Backend, BACKEND.upper(), None) == BACKEND:
        return
    dist.Backend.register_backend(BACKEND, _create, devices=["cpu"])


register()
