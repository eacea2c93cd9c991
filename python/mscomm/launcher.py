"""``mscomm-run -n N [options] [--] command ...``: run N local ranks of a job.

Each rank gets ``MSCOMM_UNIQUE_ID``, ``MSCOMM_RANK``, ``MSCOMM_WORLD_SIZE``, ``MSCOMM_LOCAL_RANK``,
``MSCOMM_LOCAL_SIZE`` and ``MSCOMM_JOB_TAG``, and the standard ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` (a free port of its own),
so ``torch.distributed.init_process_group("mscomm")`` (or ``"gloo"``) works as under torchrun; its
output lines are prefixed with ``[rank]``. A command that is a Python script
(``mscomm-run -n 2 train.py``) runs with the current interpreter.
Ctrl-C is forwarded to every rank. When a rank fails, the others are ended and ``mscomm-run``
exits non-zero naming the rank that failed first. At exit, shared-memory segments of the job
left behind by killed ranks are removed.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO, Sequence

_PR_SET_PDEATHSIG = 1
_GRACE_SECONDS = 5.0


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # A rank must not outlive a launcher that was killed with SIGKILL.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _pump(stream: IO[bytes], out: IO[str], prefix: str, lock: threading.Lock) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        with lock:
            out.write(f"{prefix}{line}\n")
            out.flush()
    stream.close()


def sweep_shm(job_tag: str, *, prefix: bool = False) -> list[str]:
    """Remove this job's shared-memory segments (prefix: those of every job tag starting with
    ``job_tag``); returns the names removed."""
    removed = []
    for path in glob.glob(f"/dev/shm/mscomm-{job_tag}{'' if prefix else '-'}*"):
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def job_environment(rank: int, size: int, unique_id: str, job_tag: str, extra: dict[str, str] | None = None,
                    master_port: int | None = None) -> dict[str, str]:
    """The environment of one rank (also used by tests that start ranks themselves).

    With ``master_port``, also the variables torch's ``env://`` rendezvous reads (the same
    ``master_port`` for every rank of the job)."""
    env = dict(os.environ)
    if master_port is not None:
        env.update(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(size),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(master_port))
    env.update(
        MSCOMM_UNIQUE_ID=unique_id,
        MSCOMM_RANK=str(rank),
        MSCOMM_WORLD_SIZE=str(size),
        MSCOMM_LOCAL_RANK=str(rank),
        MSCOMM_LOCAL_SIZE=str(size),
        MSCOMM_JOB_TAG=job_tag,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


def new_job(host: str = "127.0.0.1") -> tuple[str, str]:
    """A unique id (free port, fresh secret) and a job tag for a local job."""
    unique_id = f"mscomm://{host}:{_free_port(host)}/{secrets.token_hex(32)}"
    return unique_id, secrets.token_hex(4)


def resolve_command(command: Sequence[str]) -> list[str]:
    """A Python script given as the command runs with this interpreter; another file in the
    current folder runs as ``./file``; anything else is looked up on PATH as usual."""
    command = list(command)
    program = command[0]
    if os.path.isfile(program):
        if program.endswith(".py") or not os.access(program, os.X_OK):
            return [sys.executable, *command]
        if os.sep not in program:
            return [os.path.join(".", program), *command[1:]]
    return command


def run(command: Sequence[str], nranks: int, *, timeout: float | None = None, prefix: bool = True,
        extra_env: dict[str, str] | None = None) -> int:
    """Run ``command`` as ``nranks`` ranks; returns the exit status for the launcher."""
    unique_id, job_tag = new_job()
    master_port = _free_port("127.0.0.1")
    while f":{master_port}/" in unique_id:
        master_port = _free_port("127.0.0.1")
    command = resolve_command(command)
    lock = threading.Lock()
    procs: list[subprocess.Popen[bytes]] = []
    pumps: list[threading.Thread] = []
    interrupted = {"signal": 0}

    def forward(signum: int, _frame: object) -> None:
        interrupted["signal"] = signum
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for rank in range(nranks):
            p = subprocess.Popen(command, env=job_environment(rank, nranks, unique_id, job_tag, extra_env, master_port),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
            procs.append(p)
            tag = f"[{rank}] " if prefix else ""
            for stream, out in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
                t = threading.Thread(target=_pump, args=(stream, out, tag, lock), daemon=True)
                t.start()
                pumps.append(t)
        return _supervise(procs, timeout, interrupted)
    except FileNotFoundError as e:
        print(f"mscomm-run: cannot start {command[0]!r}: {e.strerror}", file=sys.stderr)
        return 127
    finally:
        _end_all(procs)
        for t in pumps:
            t.join(timeout=2)
        for s, h in old.items():
            signal.signal(s, h)
        removed = sweep_shm(job_tag)
        if removed:
            print(f"mscomm-run: removed {len(removed)} shared-memory segment(s) left by ended ranks", file=sys.stderr)


def _supervise(procs: list[subprocess.Popen[bytes]], timeout: float | None, interrupted: dict[str, int]) -> int:
    start = time.monotonic()
    left_early: list[int] = []  # ranks that exited 0 while others still ran
    while True:
        codes = [p.poll() for p in procs]
        if any(c is None for c in codes):
            left_early += [r for r, c in enumerate(codes) if c == 0 and r not in left_early]
        failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
        if interrupted["signal"]:
            _end_all(procs)
            print("mscomm-run: interrupted; all ranks ended", file=sys.stderr)
            return 128 + interrupted["signal"]
        if failed:
            rank, code = failed[0]
            others = [r for r, c in enumerate(codes) if c is None]
            _end_all(procs)
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            extra = f"; ended ranks {others}" if others else ""
            early = [r for r in left_early if r != rank]
            if early:
                extra += f" (rank{'s' if len(early) > 1 else ''} {', '.join(map(str, early))} had exited with status 0 " \
                         "while the others still ran)"
            print(f"mscomm-run: rank {rank} failed first: it {how}{extra}", file=sys.stderr)
            return code if code > 0 else 128 - code
        if all(c == 0 for c in codes):
            return 0
        if timeout is not None and time.monotonic() - start > timeout:
            running = [r for r, c in enumerate(codes) if c is None]
            _end_all(procs)
            print(f"mscomm-run: timed out after {timeout:g} s; ranks still running: {running}", file=sys.stderr)
            return 124
        time.sleep(0.02)


def _end_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + _GRACE_SECONDS
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mscomm-run",
        description="Run N local ranks of an mscomm job (prefixing output with the rank).",
        usage="mscomm-run -n N [--timeout S] [--force-tcp] [--no-prefix] [--] command [args ...]\n"
              "       mscomm-run --emulate TOPOLOGY.json [--scale F] [--timeout S] [--] command [args ...]",
    )
    parser.add_argument("-n", "--nranks", type=int, help="number of ranks to start (with --emulate: the topology's)")
    parser.add_argument("--timeout", type=float, default=None, help="end the job after this many seconds (exit 124)")
    parser.add_argument("--force-tcp", action="store_true", help="use TCP between the ranks (sets MSCOMM_FORCE_TCP=1)")
    parser.add_argument("--no-prefix", action="store_true", help="do not prefix output lines with the rank")
    parser.add_argument("--emulate", metavar="TOPOLOGY", help="run each host of this topology (file or zoo name) "
                        "in its own network namespace with shaped links (root; docs/emulation.md)")
    parser.add_argument("--scale", type=float, default=None, help="with --emulate: link rate = topology bandwidth x this")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the program each rank runs")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given; e.g. mscomm-run -n 2 python train.py")
    extra = {"MSCOMM_FORCE_TCP": "1"} if args.force_tcp else None
    if args.emulate:
        return _run_emulated(args, command, extra)
    if args.nranks is None:
        parser.error("the following arguments are required: -n/--nranks (or --emulate TOPOLOGY)")
    if args.nranks < 1:
        parser.error(f"-n must be at least 1, got {args.nranks}")
    return run(command, args.nranks, timeout=args.timeout, prefix=not args.no_prefix, extra_env=extra)


def _run_emulated(args: argparse.Namespace, command: Sequence[str], extra: dict[str, str] | None) -> int:
    from mscomm.emulate import DEFAULT_SCALE, EmulationError, load_fabric, run_emulated

    try:
        fabric = load_fabric(args.emulate, args.scale or DEFAULT_SCALE)
        if args.nranks is not None and args.nranks != fabric.topology.num_ranks:
            raise EmulationError(f"-n {args.nranks} but topology {fabric.topology.name!r} has "
                                 f"{fabric.topology.num_ranks} ranks; leave out -n")
        return run_emulated(command, args.emulate, scale=args.scale or DEFAULT_SCALE, timeout=args.timeout,
                            prefix=not args.no_prefix, extra_env=extra)
    except EmulationError as exc:
        print(f"mscomm-run: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
