"""``mscomm.init()``: find out who we are from the launcher's environment.

Recognized, in this order:

* ``mscomm-run``: ``MSCOMM_UNIQUE_ID``, ``MSCOMM_RANK``, ``MSCOMM_WORLD_SIZE``.
* torchrun (and anything torch-elastic-like): ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
  ``MASTER_PORT``. Rank 0 makes the unique id and shares it through torch's TCP store on
  ``MASTER_ADDR:MASTER_PORT``; without torch installed, ``MSCOMM_SECRET`` must be set and rank 0
  listens on ``MASTER_PORT + MSCOMM_PORT_OFFSET``.
* mpirun (Open MPI: ``OMPI_COMM_WORLD_RANK``; MPICH/Hydra: ``PMI_RANK``): the id is broadcast
  with mpi4py.
* Slurm (``SLURM_PROCID``, ``SLURM_NTASKS``): rank 0 runs on the first node of the job and listens
  on ``MASTER_PORT + MSCOMM_PORT_OFFSET`` (or ``MSCOMM_BOOTSTRAP_PORT``); ``MSCOMM_SECRET`` must be
  set (export it before ``srun``), unless mpi4py can broadcast the id.
* Nothing: a single-rank job.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

from mscomm import _core, _default
from mscomm import env as registry
from mscomm.communicator import Communicator
from mscomm.errors import InvalidArgument

_inits = 0


@dataclass(frozen=True)
class LaunchInfo:
    """Who this process is, as the launcher told it."""

    launcher: str
    rank: int
    size: int
    local_rank: int


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"environment variable {name}={value!r} is not an integer") from None


def detect() -> LaunchInfo:
    """Read the launcher's environment (see the module docstring)."""
    env = os.environ
    if env.get("MSCOMM_UNIQUE_ID"):
        return LaunchInfo("mscomm-run", _env_int("MSCOMM_RANK"), _env_int("MSCOMM_WORLD_SIZE"),
                          int(env.get("MSCOMM_LOCAL_RANK", "0") or 0))
    if "RANK" in env and "WORLD_SIZE" in env and "MASTER_ADDR" in env:
        return LaunchInfo("torchrun", _env_int("RANK"), _env_int("WORLD_SIZE"), int(env.get("LOCAL_RANK", "0") or 0))
    if "OMPI_COMM_WORLD_RANK" in env:
        return LaunchInfo("mpirun", _env_int("OMPI_COMM_WORLD_RANK"), _env_int("OMPI_COMM_WORLD_SIZE"),
                          int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", "0") or 0))
    if "PMI_RANK" in env and "PMI_SIZE" in env:
        return LaunchInfo("mpirun", _env_int("PMI_RANK"), _env_int("PMI_SIZE"), int(env.get("MPI_LOCALRANKID", "0") or 0))
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        return LaunchInfo("slurm", _env_int("SLURM_PROCID"), _env_int("SLURM_NTASKS"), int(env.get("SLURM_LOCALID", "0") or 0))
    return LaunchInfo("none", 0, 1, 0)


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand a Slurm node list such as ``node[01-03,07],rack[1-2]-n[1-2]`` into host names."""
    hosts: list[str] = []
    for part in re.findall(r"(?:[^,\[]|\[[^\]]*\])+", nodelist):
        hosts.extend(_expand_one(part))
    return hosts


def _expand_one(name: str) -> list[str]:
    m = re.search(r"\[([^\]]*)\]", name)
    if not m:
        return [name]
    prefix, suffix = name[:m.start()], name[m.end():]
    out = []
    for r in m.group(1).split(","):
        lo, _, hi = r.partition("-")
        for i in range(int(lo), int(hi or lo) + 1):
            out.extend(_expand_one(f"{prefix}{str(i).zfill(len(lo))}{suffix}"))
    return out


def _secret_id(host: str, port: int, where: str) -> str:
    secret = os.environ.get("MSCOMM_SECRET", "")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", secret):
        raise InvalidArgument(
            f"{where}: set MSCOMM_SECRET to the same 64 hex digits on every rank "
            "(e.g. export MSCOMM_SECRET=$(python -c 'import secrets;print(secrets.token_hex(32))')) "
            "so that only this job's ranks can join"
        )
    return f"mscomm://{host}:{port}/{secret.lower()}"


def _reachable_host(local_only: bool) -> str:
    if local_only:
        return "127.0.0.1"
    return socket.gethostbyname(socket.gethostname())


def _unique_id(info: LaunchInfo) -> tuple[str, object]:
    """The job's unique id, and an object to keep alive until every rank has joined (a store)."""
    env = os.environ
    if info.launcher == "mscomm-run":
        return env["MSCOMM_UNIQUE_ID"], None
    if info.launcher == "torchrun":
        return _unique_id_torchrun(info)
    if info.launcher == "mpirun":
        try:
            from mpi4py import MPI
        except ImportError:
            raise InvalidArgument("mscomm.init() under mpirun needs mpi4py (pip install mpi4py)") from None
        world = MPI.COMM_WORLD
        local_size = int(env.get("OMPI_COMM_WORLD_LOCAL_SIZE", env.get("MPI_LOCALNRANKS", "0")) or 0)
        uid = create_id_on_rank0(info, _reachable_host(local_size == info.size))
        return world.bcast(uid, root=0), None
    if info.launcher == "slurm":
        nodes = expand_nodelist(env.get("SLURM_JOB_NODELIST", env.get("SLURM_NODELIST", "localhost")))
        port = _env_int("MASTER_PORT") + _env_int_registry("MSCOMM_PORT_OFFSET") if "MASTER_PORT" in env \
            else _env_int_registry("MSCOMM_BOOTSTRAP_PORT")
        return _secret_id(env.get("MASTER_ADDR", nodes[0]), port, "mscomm.init() under Slurm"), None
    return _core.create_unique_id("127.0.0.1", 0), None


def create_id_on_rank0(info: LaunchInfo, host: str) -> str:
    return _core.create_unique_id(host, 0) if info.rank == 0 else ""


def _env_int_registry(name: str) -> int:
    value = registry.get(name)
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"environment variable {name}={value!r} is not an integer") from None


def _unique_id_torchrun(info: LaunchInfo) -> tuple[str, object]:
    env = os.environ
    if "MASTER_PORT" not in env:
        raise InvalidArgument("mscomm.init(): RANK, WORLD_SIZE and MASTER_ADDR are set but MASTER_PORT is not; "
                              "set it to a free port on MASTER_ADDR (the same on every rank)")
    addr, port = env["MASTER_ADDR"], _env_int("MASTER_PORT")
    try:
        from torch.distributed import TCPStore
    except ImportError:
        return _secret_id(addr, port + _env_int_registry("MSCOMM_PORT_OFFSET"),
                          "mscomm.init() under torchrun without torch"), None
    from datetime import timedelta

    global _inits
    key = f"mscomm/unique_id/{_inits}"
    _inits += 1
    # torchrun's agent already serves a store on MASTER_PORT; otherwise (a hand launch: RANK,
    # WORLD_SIZE, MASTER_ADDR, MASTER_PORT set by a script) rank 0 hosts it, and must keep it up
    # until every rank has read the id: the caller holds the store until the communicator exists.
    agent_store = env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    timeout = timedelta(seconds=_env_int_registry("MSCOMM_BOOTSTRAP_TIMEOUT"))
    store = TCPStore(addr, port, info.size, is_master=(info.rank == 0 and not agent_store), timeout=timeout,
                     wait_for_workers=False)
    if info.rank == 0:
        local = addr in ("127.0.0.1", "localhost") or int(env.get("LOCAL_WORLD_SIZE", "0") or 0) == info.size
        store.set(key, _core.create_unique_id(_reachable_host(local) if not local else "127.0.0.1", 0))
    return store.get(key).decode(), store


def init(timeout: float | None = None) -> Communicator:
    """Create the default communicator from the launcher's environment.

    Returns the same communicator when called again. See the module docstring for the launchers
    understood.

    Parameters
    ----------
    timeout : float, optional
        Seconds any blocking call may take (default ``MSCOMM_TIMEOUT``).
    """
    current = _default.peek()
    if current is not None:
        return current
    info = detect()
    if not 0 <= info.rank < info.size:
        raise InvalidArgument(f"{info.launcher}: rank {info.rank} is outside 0..{info.size - 1}")
    unique_id, keep_until_joined = _unique_id(info)
    comm = Communicator(info.rank, info.size, unique_id, timeout)
    del keep_until_joined  # every rank has joined the bootstrap: none needs the store any more
    _default.set(comm)
    return comm


def is_initialized() -> bool:
    return _default.peek() is not None


def get_default() -> Communicator:
    """The communicator made by :func:`init`."""
    return _default.get()


def finalize() -> None:
    """Close the default communicator (collective)."""
    current = _default.peek()
    _default.set(None)
    if current is not None:
        current.close()
