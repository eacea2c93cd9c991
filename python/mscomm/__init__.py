"""mscomm: collective communication for AI training and inference.

Quick use::

    import numpy as np, mscomm
    comm = mscomm.init()                  # reads mscomm-run, torchrun, mpirun or Slurm variables
    x = np.ones(1024, dtype=np.float32)
    mscomm.allreduce(x)                   # in place: x now holds the sum over all ranks

Nothing here imports torch, cupy or CUDA; those are touched only when you pass their arrays.
"""

from __future__ import annotations

from mscomm.errors import (
    Aborted,
    AuthenticationError,
    InternalError,
    InvalidArgument,
    MscommError,
    PeerFailure,
    Timeout,
)
from mscomm.communicator import Communicator, create_unique_id
from mscomm.collectives import (
    REDUCE_OPS,
    allgather,
    allreduce,
    alltoall,
    alltoallv,
    barrier,
    broadcast,
    gather,
    recv,
    reduce,
    reduce_scatter,
    register,
    scatter,
    send,
)
from mscomm.work import Work
from mscomm import selection
from mscomm.selection import algorithms
from mscomm.registration import RegisteredBuffer, empty
from mscomm.launch_env import init, finalize, get_default, is_initialized
from mscomm.buffers import SUPPORTED_DTYPES

__version__ = "0.1.0"

__all__ = [
    "Aborted",
    "AuthenticationError",
    "Communicator",
    "InternalError",
    "InvalidArgument",
    "MscommError",
    "PeerFailure",
    "REDUCE_OPS",
    "RegisteredBuffer",
    "SUPPORTED_DTYPES",
    "Timeout",
    "Work",
    "algorithms",
    "allgather",
    "allreduce",
    "alltoall",
    "alltoallv",
    "barrier",
    "broadcast",
    "gather",
    "recv",
    "reduce",
    "reduce_scatter",
    "register",
    "scatter",
    "selection",
    "send",
    "create_unique_id",
    "empty",
    "finalize",
    "get_default",
    "init",
    "is_initialized",
]

# Register the torch.distributed backend "mscomm" when torch is already loaded; never import torch
# here (otherwise `import mscomm.torch` or torch's "torch.backends" entry point registers it).
import sys as _sys

if getattr(_sys.modules.get("torch"), "distributed", None) is not None:
    from mscomm.torch import register as _register_torch_backend

    _register_torch_backend()
