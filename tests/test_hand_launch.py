"""Hand launch: RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set by a script (no torchrun agent),
the way Slurm scripts, Kubernetes operators and many users start jobs.

`mscomm.init()` and `dist.init_process_group("mscomm")` must both work, with ranks started in any
order, while strangers send garbage to the rendezvous port and to the bootstrap port; a rank
killed while it waits for the others leaves nothing in /dev/shm. Every process is bounded by a
timeout and its session is killed when the test ends.
"""

from __future__ import annotations

import glob
import os
import secrets
import socket
import subprocess
import sys
import threading
import time

import pytest

from test_init_env import ALLREDUCE_BODY, SCRIPT_HEAD, clean_env, describe, free_port_pair, results_of

pytest.importorskip("torch")

TORCH_BODY = '''
import time
import torch, torch.distributed as dist
import mscomm.torch  # registers the "mscomm" backend
t0 = time.monotonic()
dist.init_process_group("mscomm")
t = torch.full((1000,), float(dist.get_rank() + 1))
dist.all_reduce(t)
emit({"rank": dist.get_rank(), "size": dist.get_world_size(), "sum": [t[0].item(), t[-1].item()],
      "init_s": time.monotonic() - t0})
dist.destroy_process_group()
'''

# What strangers send: nothing, a few random bytes, a large random burst, an HTTP request, and a
# frame that starts like a real bootstrap hello but has a wrong secret.
GARBAGE = [b"", b"\x00\x01garbage", os.urandom(1 << 16), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
           b"MCSB" + os.urandom(76)]


def hand_env(rank: int, size: int, port: int, tag: str) -> dict[str, str]:
    return clean_env(RANK=rank, WORLD_SIZE=size, LOCAL_RANK=rank, LOCAL_WORLD_SIZE=size, MASTER_ADDR="127.0.0.1",
                     MASTER_PORT=port, MSCOMM_JOB_TAG=tag, OMP_NUM_THREADS=1)


def segments(tag: str) -> list[str]:
    return glob.glob(f"/dev/shm/mscomm-{tag}-*")


def start(script: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int | None, str, str]]:
    out = []
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            try:
                so, se = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
                out.append((p.returncode, so, se))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                so, se = p.communicate()
                out.append((None, so, se + "\n[test: killed after timeout]"))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
    return out


def spray_garbage(port: int, stop: threading.Event, sent: list[int]) -> None:
    """Connect to 127.0.0.1:port again and again, sending each kind of garbage, until stopped."""
    while not stop.is_set():
        for junk in GARBAGE:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    if junk:
                        s.sendall(junk)
                    sent[0] += 1
            except OSError:
                pass
            if stop.wait(0.02):
                return


def bootstrap_port_of(rank0_pid: int) -> set[int]:
    """TCP ports rank 0's process listens on (its torch store and its mscomm bootstrap)."""
    inodes = set()
    for fd in glob.glob(f"/proc/{rank0_pid}/fd/*"):
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            f = ln.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def check_ranks(outs, size: int, key: str = "sum") -> list[dict]:
    assert all(rc == 0 for rc, _, _ in outs), describe(outs)
    got = [results_of(so) for _, so, _ in outs]
    assert all(len(g) == 1 for g in got), describe(outs)
    got = [g[0] for g in got]
    assert sorted(g["rank"] for g in got) == list(range(size)), describe(outs)
    total = size * (size + 1) / 2
    for g in got:
        assert g["size"] == size and g[key] == [total, total], describe(outs)
    return got


def write(tmp_path, body: str) -> str:
    path = tmp_path / "rank.py"
    path.write_text(SCRIPT_HEAD + body)
    return str(path)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("body", ["init", "torch"])
@pytest.mark.parametrize("nranks", [2, 3], ids=lambda n: f"{n}ranks")
def test_hand_launch_works_in_any_start_order(tmp_path, nranks, body):
    script = write(tmp_path, ALLREDUCE_BODY if body == "init" else TORCH_BODY)
    port, tag = free_port_pair(), f"hand{secrets.token_hex(3)}"
    # The last rank first, rank 0 last, a moment apart: no rank may depend on who comes first.
    procs = []
    t0 = time.monotonic()
    for r in reversed(range(nranks)):
        procs.append(start(script, hand_env(r, nranks, port, tag)))
        time.sleep(0.3)
    outs = finish(procs, timeout=70)
    elapsed = time.monotonic() - t0
    check_ranks(outs, nranks)
    assert elapsed < 60, f"hand launch took {elapsed:.0f} s"
    assert segments(tag) == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("body", ["init", "torch"])
@pytest.mark.parametrize("nranks", [2, 3], ids=lambda n: f"{n}ranks")
def test_hand_launch_survives_garbage_on_rendezvous_and_bootstrap_ports(tmp_path, nranks, body):
    script = write(tmp_path, ALLREDUCE_BODY if body == "init" else TORCH_BODY)
    port, tag = free_port_pair(), f"hand{secrets.token_hex(3)}"
    stop = threading.Event()
    sent = [0]
    sprayers = [threading.Thread(target=spray_garbage, args=(port, stop, sent), daemon=True)]
    procs = [start(script, hand_env(0, nranks, port, tag))]
    try:
        sprayers[0].start()
        # Rank 0 serves the store on MASTER_PORT and soon its bootstrap on a port of its own:
        # spray every port it listens on while the other ranks are still to come.
        deadline = time.monotonic() + 20
        extra: set[int] = set()
        while time.monotonic() < deadline and procs[0].poll() is None:
            extra = bootstrap_port_of(procs[0].pid) - {port}
            if extra:
                break
            time.sleep(0.1)
        for p in extra:
            t = threading.Thread(target=spray_garbage, args=(p, stop, sent), daemon=True)
            t.start()
            sprayers.append(t)
        time.sleep(1.0)
        for r in range(1, nranks):
            procs.append(start(script, hand_env(r, nranks, port, tag)))
        time.sleep(1.0)
    finally:
        outs_holder: list = []
        try:
            outs_holder = finish(procs, timeout=80)
        finally:
            stop.set()
            for t in sprayers:
                t.join(timeout=5)
    assert sent[0] > 0, "no garbage connection got through"
    check_ranks(outs_holder, nranks)
    assert segments(tag) == []


@pytest.mark.timeout(60)
def test_hand_launch_rank_killed_while_waiting_for_others_leaves_no_segment(tmp_path):
    script = write(tmp_path, ALLREDUCE_BODY)
    port, tag = free_port_pair(), f"hand{secrets.token_hex(3)}"
    p = start(script, hand_env(0, 2, port, tag))
    try:
        # Rank 0 waits for rank 1, which never comes; it is killed from outside.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (bootstrap_port_of(p.pid) - {port}):
            time.sleep(0.1)
        time.sleep(0.5)
        os.killpg(p.pid, 9)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, 9)
            p.wait()
    left = segments(tag)
    for s in left:
        os.unlink(s)
    assert left == [], f"a rank killed while waiting for the others left {left}"


@pytest.mark.timeout(60)
def test_hand_launch_missing_master_port_is_a_clear_error(tmp_path):
    script = write(tmp_path, '''
import mscomm
try:
    mscomm.init(timeout=5)
    emit({"error": None})
except Exception as e:
    emit({"error": type(e).__name__, "message": str(e)})
''')
    env = clean_env(RANK=0, WORLD_SIZE=2, MASTER_ADDR="127.0.0.1")
    outs = finish([start(script, env)], timeout=30)
    assert outs[0][0] == 0, describe(outs)
    res = results_of(outs[0][1])[0]
    assert res["error"] == "InvalidArgument" and "MASTER_PORT" in res["message"], res
