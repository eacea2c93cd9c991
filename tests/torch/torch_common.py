"""Shared pieces of the torch backend tests: a free port, and running rank code that has torch
and mscomm.torch imported and (optionally) a default process group."""

from __future__ import annotations

import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from harness import run_job  # noqa: E402

# Rank code prelude: torch first, then the backend; `init(backend)` makes the default group.
TORCH_PRELUDE = f'''
import datetime, sys
sys.path.insert(0, {HERE!r})
import torch
import torch.distributed as dist
import mscomm.torch
PORT = int(os.environ["TEST_PORT"])
def init(backend, timeout=60):
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{{PORT}}", rank=RANK, world_size=SIZE,
                            timeout=datetime.timedelta(seconds=timeout))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_torch_job(nranks: int, code: str, *, env: dict | None = None, timeout: float = 120.0, **kw):
    """``run_job`` with TORCH_PRELUDE and a fresh TEST_PORT in every rank's environment."""
    import textwrap

    extra = {"TEST_PORT": str(free_port()), "OMP_NUM_THREADS": "1", **(env or {})}
    return run_job(nranks, TORCH_PRELUDE + textwrap.dedent(code), env=extra, timeout=timeout, **kw)
