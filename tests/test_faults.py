"""Failure handling: a rank killed with SIGKILL, a rank stopped with SIGSTOP, and comm.abort().

Every surviving rank must get a clear error (PeerFailure naming the dead rank, Timeout naming the
silent one, Aborted with the reason) within seconds, and no shared memory may be left behind.
"""

from __future__ import annotations

import glob
import os
import re
import signal
import time

import pytest

from harness import run_job, transports_env

FAULT_ENV = {"MSCOMM_SHUTDOWN_TIMEOUT": "3", "MSCOMM_BOOTSTRAP_TIMEOUT": "20"}
DETECT_SECONDS = 10.0

# argv: phase victim. The victim reports the wall-clock time of its own SIGKILL; survivors report
# the error their collectives raise and when. time.time() is shared by processes on one host.
KILL_SCRIPT = '''
import signal, sys, threading
phase, victim = sys.argv[1], int(sys.argv[2])
comm = mscomm.init(timeout=60)
x = np.ones(1 << 18, np.float32)   # 1 MB
mscomm.allreduce(x)
comm.barrier()
# Leaving a barrier proves only that every rank entered it: before the victim may die, every rank
# must have left it (the bootstrap's release reaches each rank ahead of any failure report).
comm.bootstrap.barrier(60)

def die():
    emit({"killed_at": time.time()})
    os.kill(os.getpid(), signal.SIGKILL)

if RANK == victim:
    if phase == "before":          # dies before the job's next collective is started by anyone
        die()
    elif phase == "between":       # dies after a few collectives completed, while peers sleep
        for _ in range(3):
            mscomm.allreduce(x)
        die()
    elif phase == "during":        # dies from another thread while its main thread is in allreduces
        threading.Timer(1.0, die).start()
try:
    calls = 0
    if phase == "between":
        for _ in range(3):
            mscomm.allreduce(x)
            calls += 1
        time.sleep(1.0)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        x[:] = 1
        mscomm.allreduce(x)
        calls += 1
        if phase == "during" and RANK != victim and float(x[0]) != SIZE:
            emit({"wrong": float(x[0])})
    emit({"error": None, "calls": calls})
except Exception as e:
    emit({"error": error_name(e), "message": str(e), "at": time.time(), "calls": calls})
    try:
        mscomm.allreduce(np.ones(4, np.float32), timeout=5)
        emit({"after": None})
    except Exception as e2:
        emit({"after": error_name(e2), "message": str(e2)})
'''


def job_segments(job_tag: str) -> list[str]:
    return glob.glob(f"/dev/shm/mscomm-{job_tag}-*")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("phase", ["before", "during", "between"])
@pytest.mark.parametrize("victim", ["first", "last"])
@pytest.mark.parametrize("nranks", [2, 4], ids=lambda n: f"{n}ranks")
@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_fault_kill9_rank_survivors_raise_peer_failure(transport, nranks, victim, phase):
    v = 0 if victim == "first" else nranks - 1
    job = run_job(nranks, KILL_SCRIPT, env={**transports_env(transport), **FAULT_ENV}, args=[phase, str(v)],
                  timeout=90)
    dead = job[v]
    assert dead.returncode == -signal.SIGKILL, dead.describe()
    killed_at = dead.results[-1]["killed_at"]
    for r in job.ranks:
        if r.rank == v:
            continue
        assert r.returncode is not None, f"survivor hung\n{r.describe()}"
        errors = [x for x in r.results if "error" in x]
        assert errors, r.describe()
        res = errors[0]
        assert res["error"] == "PeerFailure", f"rank {r.rank} got {res}\n{r.describe()}"
        assert f"rank {v}" in res["message"], f"the error should name the dead rank {v}: {res['message']}"
        assert res["at"] - killed_at < DETECT_SECONDS, f"rank {r.rank} noticed after {res['at'] - killed_at:.1f} s"
        assert not [x for x in r.results if "wrong" in x], f"rank {r.rank} saw wrong sums before the failure"
        after = [x for x in r.results if "after" in x]
        assert after and after[0]["after"] in ("PeerFailure", "Aborted", "InvalidArgument"), \
            f"rank {r.rank}: the communicator must stay failed: {after}"
        assert r.returncode == 0, r.describe()
        assert r.elapsed < 60, f"rank {r.rank} took {r.elapsed:.0f} s to exit after the failure"
    assert job_segments(job.job_tag) == [], "segments of the job were left in /dev/shm"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_fault_kill9_from_outside_during_allreduce_loop(transport):
    # The test itself kills rank 1 once every rank is inside its loop of 1 MB allreduces.
    def during(procs):
        marker = f"/proc/{procs[1].pid}/stat"
        time.sleep(0.5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not os.path.exists(ready_file(procs[1].pid)):
            time.sleep(0.05)
        time.sleep(0.7)
        assert os.path.exists(marker)
        os.kill(procs[1].pid, signal.SIGKILL)
        killed["at"] = time.time()

    killed: dict[str, float] = {}
    job = run_job(3, '''
comm = mscomm.init(timeout=60)
x = np.ones(1 << 18, np.float32)
mscomm.allreduce(x)
open(f"/tmp/mscomm-test-ready-{os.getpid()}", "w").close()
try:
    for i in range(100000):
        mscomm.allreduce(x)
    emit({"error": None})
except Exception as e:
    emit({"error": error_name(e), "message": str(e), "at": time.time()})
finally:
    try:
        os.unlink(f"/tmp/mscomm-test-ready-{os.getpid()}")
    except FileNotFoundError:
        pass
''', env={**transports_env(transport), **FAULT_ENV}, during=during, timeout=60)
    for p in glob.glob("/tmp/mscomm-test-ready-*"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    assert "at" in killed
    assert job[1].returncode == -signal.SIGKILL
    for r in (job[0], job[2]):
        assert r.results, r.describe()
        res = r.results[0]
        assert res["error"] == "PeerFailure", r.describe()
        assert "rank 1" in res["message"], res["message"]
        assert res["at"] - killed["at"] < DETECT_SECONDS
    assert job_segments(job.job_tag) == []


def ready_file(pid: int) -> str:
    return f"/tmp/mscomm-test-ready-{pid}"


# -- SIGSTOP: a rank that is alive but silent -----------------------------------------------------

STOP_SCRIPT = '''
import signal
comm = mscomm.init(timeout=3)
x = np.ones(1 << 16, np.float32)
mscomm.allreduce(x)
comm.barrier()
if RANK == SIZE - 1:
    os.kill(os.getpid(), signal.SIGSTOP)   # resumed by the test with SIGCONT
    t0 = time.monotonic()
    try:
        mscomm.allreduce(x)
        emit({"resumed": None})
    except Exception as e:
        emit({"resumed": error_name(e), "message": str(e), "seconds": time.monotonic() - t0})
else:
    t0 = time.monotonic()
    try:
        mscomm.allreduce(x)
        emit({"error": None})
    except Exception as e:
        emit({"error": error_name(e), "message": str(e), "seconds": time.monotonic() - t0})
'''


def wait_stopped(pid: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not stop")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("resume", ["sigcont", "sigkill"])
@pytest.mark.parametrize("nranks", [2, 3], ids=lambda n: f"{n}ranks")
@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_fault_sigstop_rank_survivors_time_out_naming_it(transport, nranks, resume):
    stopped = nranks - 1

    def during(procs):
        pid = procs[stopped].pid
        wait_stopped(pid)
        time.sleep(3 + 4)  # the survivors' timeout, and time to report it
        os.kill(pid, signal.SIGCONT if resume == "sigcont" else signal.SIGKILL)

    job = run_job(nranks, STOP_SCRIPT, env={**transports_env(transport), **FAULT_ENV}, during=during, timeout=60)
    messages = []
    for r in job.ranks[:stopped]:
        assert r.results, r.describe()
        res = r.results[0]
        assert res["error"] == "Timeout", r.describe()
        assert re.search(r"from rank \d+|not heard from ranks \[\d", res["message"]), \
            f"the timeout should name the peer waited for: {res['message']}"
        messages.append(res["message"])
        assert res["seconds"] < 3 + 5, res
        assert r.returncode == 0, r.describe()
    # In a ring a survivor may wait for another survivor; at least one must name the stopped rank.
    assert any(re.search(rf"from rank {stopped}\b|not heard from ranks \[[^]]*\b{stopped}\b", m) for m in messages), \
        f"no survivor named the stopped rank {stopped}: {messages}"
    victim = job[stopped]
    if resume == "sigkill":
        assert victim.returncode == -signal.SIGKILL
    else:
        # Resumed after everyone else gave up: it must fail cleanly, not hang or crash.
        assert victim.returncode == 0, victim.describe()
        assert victim.results and victim.results[0]["resumed"] in ("PeerFailure", "Timeout", "Aborted"), \
            victim.describe()
    assert job_segments(job.job_tag) == []


# -- abort() --------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("warm", ["first-call", "warm"])
@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_fault_abort_from_thread_unblocks_collective(transport, warm):
    # "first-call": the aborted allreduce is the communicator's first (it sets up its buffers);
    # "warm": one allreduce of the same size ran before.
    job = run_job(2, '''
import sys, threading
comm = mscomm.init(timeout=30)
if sys.argv[1] == "warm":
    mscomm.allreduce(np.ones(1 << 16, np.float32))
comm.barrier()
if RANK == 0:
    threading.Timer(1.0, comm.abort, args=("stopped by the test",)).start()
    t0 = time.monotonic()
    try:
        mscomm.allreduce(np.ones(1 << 16, np.float32))   # rank 1 never joins this one
        emit({"error": None})
    except Exception as e:
        emit({"error": error_name(e), "message": str(e), "seconds": time.monotonic() - t0,
              "is_conn_aborted": isinstance(e, ConnectionAbortedError)})
    try:
        mscomm.allreduce(np.ones(4, np.float32), timeout=3)
        emit({"after": None})
    except Exception as e:
        emit({"after": error_name(e), "message": str(e)})
else:
    time.sleep(3)
    t0 = time.monotonic()
    try:
        mscomm.allreduce(np.ones(1 << 16, np.float32), timeout=5)
        emit({"peer": None})
    except Exception as e:
        emit({"peer": error_name(e), "message": str(e), "seconds": time.monotonic() - t0})
''', env={**transports_env(transport), **FAULT_ENV}, args=[warm], timeout=45)
    r0 = job[0]
    assert r0.returncode == 0, r0.describe()
    first, after = r0.results
    assert first["error"] == "Aborted" and first["is_conn_aborted"], r0.describe()
    assert "stopped by the test" in first["message"], first["message"]
    assert 0.5 < first["seconds"] < 6, first
    assert after["after"] == "Aborted", f"an aborted communicator must stay aborted: {after}"
    r1 = job[1]
    assert r1.returncode == 0, r1.describe()
    assert r1.results and r1.results[0]["peer"] is not None, "rank 1's allreduce cannot succeed without rank 0"
    assert r1.results[0]["seconds"] < 8, r1.results
    assert job_segments(job.job_tag) == []


@pytest.mark.timeout(60)
def test_fault_abort_unblocks_bootstrap_barrier():
    job = run_job(2, '''
import threading
comm = mscomm.init(timeout=30)
if RANK == 0:
    threading.Timer(1.0, comm.abort, args=("barrier abort",)).start()
    t0 = time.monotonic()
    try:
        comm.barrier()
        emit({"error": None, "seconds": time.monotonic() - t0})
    except Exception as e:
        emit({"error": error_name(e), "message": str(e), "seconds": time.monotonic() - t0})
else:
    time.sleep(10)
''', env=FAULT_ENV, timeout=45)
    r0 = job[0]
    assert r0.returncode == 0 and r0.results, r0.describe()
    res = r0.results[0]
    assert res["error"] == "Aborted", r0.describe()
    assert "barrier abort" in res["message"]
    assert res["seconds"] < 6


CUT_SOCKETS = r'''
import socket, threading
comm = mscomm.init(timeout=60)
boot_port = int(os.environ["MSCOMM_UNIQUE_ID"].rsplit(":", 1)[1].split("/")[0])

def cut_data_connections():
    time.sleep(0.5)
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if s.type == socket.SOCK_STREAM and s.getpeername()[1] != boot_port:
                s.shutdown(socket.SHUT_RDWR)   # the connection to the peer breaks mid-transfer
        except OSError:
            pass
        finally:
            s.close()

if RANK == 1:
    threading.Thread(target=cut_data_connections, daemon=True).start()
x = np.ones(1 << 20, np.float32)
t0 = time.monotonic()
try:
    for i in range(100000):
        comm.allreduce(x, "max")
    emit({"error": None})
except mscomm.MscommError as e:
    emit({"error": type(e).__name__, "message": str(e), "seconds": time.monotonic() - t0})
os._exit(0)
'''


@pytest.mark.timeout(90)
def test_fault_connection_cut_mid_transfer_fails_both_ranks_fast():
    job = run_job(2, CUT_SOCKETS, env={"MSCOMM_FORCE_TCP": "1"}, timeout=60)
    for r in range(2):
        res = job.results(r)[0]
        assert res["error"] == "PeerFailure", job[r].describe()
        assert "TCP connection" in res["message"], res
        assert res["seconds"] < 15, res
