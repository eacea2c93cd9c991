"""Who started this process, and the trainer's own launcher (``--ranks N``).

The trainer's launcher starts N copies of the command with torchrun's variables (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` on a free loopback port), so each rank takes the
same ``env://`` path as under torchrun; rank 0 writes the progress bar straight to the terminal.
When a rank fails, the others are ended and the launcher exits with that rank's status.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Sequence

CHILD_ENV = "SIGMA_TRAIN_CHILD"  # set in the ranks that --ranks started


def launched_world() -> tuple[str, int, int] | None:
    """(launcher, rank, world) when a launcher started this process, else None."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env and "MASTER_ADDR" in env:
        return "torchrun", int(env["RANK"]), int(env["WORLD_SIZE"])
    from mscomm.launch_env import detect
    info = detect()
    if info.launcher != "none":
        return info.launcher, info.rank, info.size
    return None


def _die_with_parent() -> None:
    # A rank must not outlive a launcher that was killed (SIGKILL included).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv: Sequence[str], n: int) -> int:
    """Start n ranks of this command (env:// rendezvous on a free port) and supervise them."""
    port = str(_free_port())
    procs = []
    for rank in range(n):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(n), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(n),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, PYTHONUNBUFFERED="1", **{CHILD_ENV: "1"})
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
        procs.append(subprocess.Popen([sys.executable, "-m", "mscomm.sigma", *argv], env=env,
                                      preexec_fn=_die_with_parent))

    def forward(signum, _frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            codes = [p.poll() for p in procs]
            bad = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                rank, code = bad[0]
                print(f"mscomm-sigma-train: rank {rank} failed (exit {code}); ending the others", file=sys.stderr)
                return code if code > 0 else 128 - code
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for s, h in old.items():
            signal.signal(s, h)


