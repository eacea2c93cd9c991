"""Failure propagation: a rank that leaves or fails mid-job is reported on every other rank within
seconds, with its cause and naming it, instead of after MSCOMM_TIMEOUT.

Faults (the victim does it right after every rank has left a bootstrap barrier; survivors loop
over 1 MB allreduces with a 60 s timeout, far beyond what the test allows):

* ``exit0``: ``sys.exit(0)`` mid-job (no error; atexit closes the communicator);
* ``raise``: an uncaught exception;
* ``kill9``: SIGKILL;
* ``timeout``: the victim's own collective times out (its timeout is 0.5 s; the others' 60 s)
  because rank 0 is late;
* ``argerror``: the victim passes an argument only it gets wrong (an unknown algorithm name).

Time to surface is measured from the victim's fault (``time.time()`` is shared by processes on
one host) to each survivor's exception; the test allows DETECT_SECONDS (the machine running the
tests may be heavily loaded); docs/reliability.md records measured times and
benchmarks/fault_timing.py --propagation remeasures them.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from harness import PRELUDE, RESULT_MARK, run_job, transports_env

ENV = {"MSCOMM_SHUTDOWN_TIMEOUT": "30", "MSCOMM_BOOTSTRAP_TIMEOUT": "30"}
DETECT_SECONDS = 5.0
LATE_SECONDS = 2.0  # how late rank 0 is in the timeout case

SCRIPT = '''
import signal
fault, victim = sys.argv[1], int(sys.argv[2])
comm = mscomm.init(timeout=60)
x = np.ones(1 << 18, np.float32)   # 1 MB
for _ in range(3):
    mscomm.allreduce(x)
comm.bootstrap.barrier(60)
comm.bootstrap.barrier(60)  # every rank has left the first barrier: the victim may act

def mark():
    emit({"fault_at": time.time()})

if RANK == victim:
    if fault == "exit0":
        mscomm.allreduce(x)
        mark()
        sys.exit(0)
    if fault == "raise":
        mscomm.allreduce(x)
        mark()
        raise RuntimeError("boom from the victim")
    if fault == "kill9":
        mscomm.allreduce(x)
        mark()
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "argerror":
        mscomm.allreduce(x)
        mark()
        mscomm.allreduce(x, algorithm="no-such-algorithm")
    if fault == "timeout":
        try:
            mscomm.allreduce(x, timeout=0.5)
        finally:
            mark()
if fault == "timeout" and RANK == 0:
    time.sleep(%(late)s)
calls = 0
entered = time.time()
try:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mscomm.allreduce(x)
        calls += 1
    emit({"error": None, "calls": calls})
except Exception as e:
    emit({"error": error_name(e), "message": str(e), "at": time.time(), "entered": entered, "calls": calls})
''' % {"late": LATE_SECONDS}

EXPECT = {  # fault: (error class on survivors, words the message must hold)
    "exit0": ("PeerFailure", "has left"),
    "raise": ("PeerFailure", "raised RuntimeError: boom from the victim"),
    "kill9": ("PeerFailure", "died or was killed"),
    "timeout": ("Timeout", "timed out"),
    # Refused before the collective starts (then the exception ends the process: "raised
    # InvalidArgument") or inside it (then reported as that rank's failure): both name the cause.
    "argerror": (("PeerFailure", "InvalidArgument"), "unknown allreduce algorithm 'no-such-algorithm'"),
}


def job_segments(job_tag: str) -> list[str]:
    return glob.glob(f"/dev/shm/mscomm-{job_tag}-*")


def surfaced(r, fault_at: float) -> float:
    """Seconds from the fault (or from the survivor's own late entry) to the survivor's error."""
    res = [x for x in r.results if "error" in x][0]
    return res["at"] - max(fault_at, res["entered"])


CASES = [(f, v) for f in EXPECT for v in ("last",)] + [("exit0", "first"), ("raise", "first")]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault,victim", CASES, ids=[f"{f}/{v}" for f, v in CASES])
@pytest.mark.parametrize("nranks", [2, 4], ids=lambda n: f"{n}ranks")
@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_failure_surfaces_on_every_rank_in_seconds(transport, nranks, fault, victim):
    if fault == "timeout" and victim == "first":
        pytest.skip("rank 0 is the late rank in the timeout case")
    v = 0 if victim == "first" else nranks - 1
    job = run_job(nranks, SCRIPT, env={**transports_env(transport), **ENV}, args=[fault, str(v)], timeout=90)
    dead = job[v]
    marks = [x for x in dead.results if "fault_at" in x]
    assert marks, dead.describe()
    fault_at = marks[0]["fault_at"]
    kind, words = EXPECT[fault]
    times = []
    for r in job.ranks:
        if r.rank == v:
            continue
        assert r.returncode is not None, f"survivor hung\n{r.describe()}"
        errors = [x for x in r.results if "error" in x]
        assert errors and errors[0]["error"] is not None, r.describe()
        res = errors[0]
        assert res["error"] in ((kind,) if isinstance(kind, str) else kind), f"rank {r.rank} got {res}"
        assert f"rank {v}" in res["message"] and words in res["message"], f"rank {r.rank}: {res['message']}"
        if fault != "timeout":  # (the victim's own timeout keeps its hint about call order)
            assert "same order" not in res["message"], f"rank {r.rank} blames call order: {res['message']}"
        times.append(surfaced(r, fault_at))
        assert r.returncode == 0, r.describe()
    print(f"\n[surface] {transport} {nranks}ranks {fault}/{victim}: max {max(times):.3f} s")
    assert max(times) < DETECT_SECONDS, f"survivors noticed after {times} s"
    if fault == "exit0":
        assert dead.returncode == 0, dead.describe()
    elif fault == "kill9":
        assert dead.returncode == -signal.SIGKILL
    else:
        assert dead.returncode == 1, dead.describe()
    # No rank stays long after the fault (no shutdown wait on a failed job).
    slowest = max(r.elapsed for r in job.ranks)
    assert slowest < 60, f"a rank took {slowest:.0f} s"
    assert job_segments(job.job_tag) == []


LAUNCHED = PRELUDE + '''
RANK = int(os.environ["RANK"])
comm = mscomm.init(timeout=300)
x = np.ones(1 << 16, np.float32)
mscomm.allreduce(x)
comm.bootstrap.barrier(60)
if RANK == int(sys.argv[1]):
    time.sleep(0.5)
    print("FAULT_AT", time.time(), flush=True)
    raise RuntimeError("boom under the launcher")
while True:
    mscomm.allreduce(x)
'''


def run_launcher(cmd: list[str], timeout: float) -> tuple[int | None, str, float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSCOMM_", "TORCHELASTIC_"))
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out, 0.0, 0.0
    ended = time.time()
    fault = [float(ln.split("FAULT_AT", 1)[1]) for ln in out.splitlines() if "FAULT_AT" in ln]
    return p.returncode, out, fault[0] if fault else 0.0, ended


@pytest.mark.timeout(150)
@pytest.mark.parametrize("launcher", ["mscomm-run", "torchrun"])
@pytest.mark.parametrize("victim", [0, 1])
def test_raising_rank_ends_the_job_in_seconds(launcher, victim):
    if launcher == "torchrun":
        pytest.importorskip("torch")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(textwrap.dedent(LAUNCHED))
        script = f.name
    try:
        if launcher == "mscomm-run":
            cmd = [sys.executable, "-m", "mscomm.launcher", "-n", "2", "--timeout", "100", script, str(victim)]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   "--monitor-interval=0.2", script, str(victim)]
        rc, out, fault_at, ended = run_launcher(cmd, timeout=120)
    finally:
        os.unlink(script)
    assert rc not in (None, 0, 124), out[-4000:]
    assert fault_at, out[-4000:]
    took = ended - fault_at
    print(f"\n[job end] {launcher} victim {victim}: {took:.2f} s after the exception")
    assert "boom under the launcher" in out
    assert took < 10, f"the job ended {took:.1f} s after the exception\n{out[-4000:]}"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("nranks", [2, 4], ids=lambda n: f"{n}ranks")
def test_exit_without_close_with_several_communicators_ends_at_once(nranks):
    # atexit closes every live communicator; closing is collective, so every rank must close them
    # in the same order, or ranks wait in different close barriers until the shutdown timeout.
    job = run_job(nranks, '''
comm = mscomm.init(timeout=30)
subs = [comm.split(0, key=-RANK) for _ in range(4)]
pairs = comm.split(RANK % 2)
for c in [comm, *subs, pairs]:
    x = np.ones(16, np.float32)
    c.allreduce(x)
emit({"done_at": time.time()})
''', env=ENV, timeout=80).check_ok()
    # The whole job (start-up included) ends well inside MSCOMM_SHUTDOWN_TIMEOUT (30 s).
    slowest = max(r.elapsed for r in job.ranks)
    print(f"\n[exit] {nranks} ranks, 6 communicators each: job took {slowest:.1f} s")
    assert slowest < 25, f"the job took {slowest:.1f} s: ranks waited in different close barriers"
