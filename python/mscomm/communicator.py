"""The Python face of a communicator: collectives as methods, channels for custom algorithms."""

from __future__ import annotations

import atexit
import concurrent.futures
import sys
import weakref
from typing import Any, Callable, Sequence

from mscomm import _core
from mscomm import collectives
from mscomm.work import Work

_live: "weakref.WeakSet[Communicator]" = weakref.WeakSet()
_created = 0  # communicators made so far in this process: their order, the same on every rank


def create_unique_id(host: str = "127.0.0.1", port: int = 0) -> str:
    """Make a unique id for a new job: rank 0's address and a random 256-bit secret.

    Call it in the process that will be rank 0 (the port is bound now and kept for it) and hand
    the string to the other ranks through any channel you trust.

    Parameters
    ----------
    host : str
        Address rank 0 listens on; it must be reachable from every rank.
    port : int
        0 picks a free port.
    """
    return _core.create_unique_id(host, port)


class Communicator:
    """A group of ranks that run collectives together.

    Construction is collective: every rank calls ``Communicator(rank, size, unique_id)`` with the
    same id; it returns once all ranks have joined, connected and mapped each other's memory, or
    raises ``mscomm.Timeout`` naming the ranks that never arrived.

    Parameters
    ----------
    rank : int
        This process's rank, 0 <= rank < size.
    size : int
        Number of ranks.
    unique_id : str
        From :func:`create_unique_id` on rank 0 (``mscomm://host:port/secret``).
    timeout : float, optional
        Seconds any blocking call may take (default ``MSCOMM_TIMEOUT``).

    Examples
    --------
    >>> comm = Communicator(0, 1, create_unique_id())
    >>> import numpy as np
    >>> comm.allreduce(np.arange(3.0)).tolist()
    [0.0, 1.0, 2.0]
    >>> comm.close()
    """

    def __init__(self, rank: int, size: int, unique_id: str, timeout: float | None = None) -> None:
        from mscomm.errors import InvalidArgument

        if not isinstance(rank, int) or not isinstance(size, int):
            raise InvalidArgument(f"rank and size must be integers, got {rank!r} and {size!r}")
        if timeout is not None and not timeout > 0:
            raise InvalidArgument(f"timeout must be positive (seconds), got {timeout!r}")
        from mscomm import env

        env.check_environment()
        self._core = _core.Communicator(rank, size, unique_id, -1.0 if timeout is None else float(timeout))
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: concurrent.futures.Future | None = None
        self._splits = 0
        self._registered: dict[int, Any] = {}
        global _created
        _created += 1
        self._order = _created
        _live.add(self)

    # -- identity -------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        return self._core.rank

    @property
    def size(self) -> int:
        return self._core.size

    @property
    def timeout(self) -> float:
        return self._core.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._core.timeout = float(seconds)

    @property
    def local_ranks(self) -> list[int]:
        """Ranks on this host (they talk through shared memory), this one included."""
        return list(self._core.local_ranks)

    @property
    def num_hosts(self) -> int:
        return self._core.num_hosts

    @property
    def closed(self) -> bool:
        return self._core.closed

    def transport_to(self, peer: int) -> str:
        """``"shm"`` or ``"tcp"``: how this rank reaches ``peer``."""
        return "shm" if self._core.transport_to(peer) == _core.Transport.SHM else "tcp"

    @property
    def bootstrap(self) -> Any:
        """The bootstrap (small-message allgather, barrier, send/recv of bytes)."""
        return self._core.bootstrap

    # -- collectives (see mscomm.collectives for the parameters) ---------------------------
    def allreduce(self, x: Any, op: str = "sum", **kw: Any) -> Any:
        return collectives.allreduce(x, op, comm=self, **kw)

    def reduce(self, x: Any, root: int = 0, op: str = "sum", **kw: Any) -> Any:
        return collectives.reduce(x, root, op, comm=self, **kw)

    def broadcast(self, x: Any, root: int = 0, **kw: Any) -> Any:
        return collectives.broadcast(x, root, comm=self, **kw)

    def allgather(self, x: Any, *args: Any, **kw: Any) -> Any:
        return collectives.allgather(x, *args, comm=self, **kw)

    def reduce_scatter(self, x: Any, op: str = "sum", *args: Any, **kw: Any) -> Any:
        return collectives.reduce_scatter(x, op, *args, comm=self, **kw)

    def alltoall(self, x: Any, *args: Any, **kw: Any) -> Any:
        return collectives.alltoall(x, *args, comm=self, **kw)

    def alltoallv(self, x: Any, send_counts: Sequence[int], recv_counts: Sequence[int] | None = None, *args: Any,
                  **kw: Any) -> Any:
        return collectives.alltoallv(x, send_counts, recv_counts, *args, comm=self, **kw)

    def gather(self, x: Any, root: int = 0, *args: Any, **kw: Any) -> Any:
        return collectives.gather(x, root, *args, comm=self, **kw)

    def scatter(self, x: Any, root: int = 0, *args: Any, **kw: Any) -> Any:
        return collectives.scatter(x, root, *args, comm=self, **kw)

    def send(self, x: Any, peer: int, tag: int = 0, **kw: Any) -> Any:
        return collectives.send(x, peer, tag, comm=self, **kw)

    def recv(self, x: Any, peer: int, tag: int = 0, **kw: Any) -> Any:
        return collectives.recv(x, peer, tag, comm=self, **kw)

    def barrier(self, **kw: Any) -> Any:
        """Returns once every rank has called it."""
        return collectives.barrier(comm=self, **kw)

    def register(self, x: Any, timeout: float | None = None) -> Any:
        """Collective: registers ``x`` (a contiguous, writable array) so that later collectives on
        it skip the staging copy; returns a handle to ``deregister()``. See mscomm.registration."""
        from mscomm.registration import register

        return register(self, x, timeout)

    def load_plan(self, plan: Any, timeout: float | None = None, validate: bool = True) -> Any:
        """Collective: checks a plan (path, dict or loaded plan) and compiles it for this communicator
        once; returns a handle named ``"plan:<name>"`` that ``algorithm=`` selects. See mscomm.plans."""
        from mscomm import plans

        return plans.load(plan, comm=self, timeout=timeout, validate=validate)

    def _drain(self) -> None:
        """Waits for the async collective in flight, if any."""
        if self._pending is not None and not self._pending.done():
            concurrent.futures.wait([self._pending])

    def _submit(self, fn: Callable[[], None], result: Any, async_op: bool) -> Any:
        """Run a collective now, or (async_op) in this communicator's thread, keeping issue order."""
        if not async_op:
            self._drain()
            fn()
            return result
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"mscomm-rank{self.rank}")

        def task() -> Any:
            fn()
            return result

        self._pending = self._executor.submit(task)
        return Work(self._pending)

    def split(self, color: int | None, key: int = 0, timeout: float | None = None) -> "Communicator | None":
        """Collective: a new communicator per ``color`` holding the ranks that passed it, ordered by
        (key, rank). Ranks passing ``color=None`` take part but get None.
        """
        import json

        boot = self._core.bootstrap
        t = self.timeout if timeout is None else timeout
        mine = json.dumps([color, key, self.rank]).encode()
        everyone = [json.loads(b) for b in boot.allgather(mine, t)]
        self._splits += 1
        if color is None:
            return None
        members = sorted((k, r) for c, k, r in everyone if c == color)
        ranks = [r for _, r in members]
        new_rank = ranks.index(self.rank)
        tag = (1 << 62) + self._splits
        if new_rank == 0:
            uid = create_unique_id(boot.local_host)
            for r in ranks[1:]:
                boot.send(r, tag, uid.encode())
        else:
            uid = boot.recv(ranks[0], tag, t).decode()
        return Communicator(new_rank, len(ranks), uid, self.timeout)

    # -- building blocks for custom algorithms -------------------------------------------
    def register_memory(self, nbytes: int) -> Any:
        """A new shared buffer of ``nbytes`` bytes (view it with ``numpy.frombuffer(mem, dtype)``)."""
        return self._core.register_memory(nbytes)

    def exchange_memory(self, memory: Any) -> list[Any]:
        """Collective: returns every rank's registered memory, mapped where the peer shares this host."""
        return self._core.exchange_memory(memory)

    def semaphore(self, peer: int) -> Any:
        """A semaphore with ``peer``; both ranks must create theirs toward each other in the same order."""
        return self._core.make_semaphore(peer)

    def memory_channel(self, peer: int, local: Any, remote: Any) -> Any:
        """put/get/signal/wait on a same-host peer's memory."""
        return self._core.memory_channel(peer, local, remote)

    def port_channel(self, peer: int, local: Any, remote: Any) -> Any:
        """put/signal/flush to a peer reached over TCP, through the proxy thread."""
        return self._core.port_channel(peer, local, remote)

    def channel(self, peer: int, local: Any, remote: Any) -> Any:
        """A MemoryChannel for a same-host peer, a PortChannel otherwise."""
        return self._core.channel(peer, local, remote)

    # -- life cycle -----------------------------------------------------------------------
    def abort(self, reason: str = "abort() called") -> None:
        """Unblocks every waiter of this communicator with ``mscomm.Aborted``; safe from any thread."""
        self._core.abort(reason)

    def close(self) -> None:
        """Collective: waits (bounded by MSCOMM_SHUTDOWN_TIMEOUT) for the other ranks, then frees everything."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for reg in list(self._registered.values()):
            reg.deregister()  # while the arrays are certainly alive
        self._core.close()

    def __enter__(self) -> "Communicator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<mscomm.Communicator rank={self.rank} size={self.size} hosts={self.num_hosts}>"


def _report_uncaught(exc_type: type, exc: BaseException, tb: Any) -> None:
    """An exception that ends the program: every rank of every live communicator hears of it now,
    instead of waiting for this rank until its timeout."""
    for comm in list(_live):
        try:
            if not comm.closed:
                comm._core.report_failure(
                    f"rank {comm.rank} raised {exc_type.__name__}: {str(exc)[:500]} (its process is exiting)")
        except Exception:  # noqa: BLE001 - never hide the user's traceback
            pass
    _previous_excepthook(exc_type, exc, tb)


_previous_excepthook = sys.excepthook
sys.excepthook = _report_uncaught


@atexit.register
def _close_all() -> None:
    # Closing is collective: every rank closes its communicators in the same order (newest
    # first), so no two ranks wait in the close barriers of different communicators.
    for comm in sorted(_live, key=lambda c: -c._order):
        try:
            comm.close()
        except Exception:  # noqa: BLE001 - interpreter is exiting; never mask the real exit status
            pass
