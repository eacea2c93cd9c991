"""mscomm-run: output prefixing, exit status, failure propagation, signals, and cleanup.

Each test starts the launcher as a real process (``python -m mscomm.launcher``) in its own session,
so a hang or a leak is killed by the test instead of outliving it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from harness import mscomm_segments

LAUNCHER = [sys.executable, "-m", "mscomm.launcher"]


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any launcher variables, so nothing is inherited by mistake."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSCOMM_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an orphan may wait a moment for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_dead(pids: list[int], within: float) -> list[int]:
    """Waits up to ``within`` seconds for every pid to go; returns those still alive."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


class Launched:
    """A running ``mscomm-run``; its output is collected by reader threads while it runs."""

    def __init__(self, args: list[str], code: str, env: dict[str, str] | None = None) -> None:
        if code.startswith(PRINT_PID):
            code = PRINT_PID + textwrap.dedent(code[len(PRINT_PID):])
        cmd = [*LAUNCHER, *args, "--", sys.executable, "-c", textwrap.dedent(code)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env or clean_env(), start_new_session=True)
        self.t0 = time.monotonic()
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err, False), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream, sink: list[str], notify: bool) -> None:
        for line in iter(stream.readline, ""):
            sink.append(line)
            if notify:
                self.lines.put(line)

    def wait_for_pids(self, nranks: int, within: float = 20.0) -> dict[int, int]:
        """Rank -> pid, from ``[r] pid N`` lines the rank scripts print at start."""
        pids: dict[int, int] = {}
        deadline = time.monotonic() + within
        while len(pids) < nranks:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(f"ranks did not report their pids within {within} s:\n{self.text()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            m = re.match(r"\[(\d+)\] pid (\d+)", line)
            if m:
                pids[int(m.group(1))] = int(m.group(2))
        return pids

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"mscomm-run did not return within {timeout} s:\n{self.text()}")
        for t in self._readers:
            t.join(timeout=5)
        return rc

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stdout(self) -> str:
        return "".join(self.out)

    def stderr(self) -> str:
        return "".join(self.err)

    def text(self) -> str:
        return f"--- stdout\n{self.stdout()[-3000:]}\n--- stderr\n{self.stderr()[-3000:]}"


@pytest.fixture
def launched():
    """Starts launchers; any still running at the end of the test is killed with its ranks."""
    started: list[Launched] = []

    def start(args: list[str], code: str, env: dict[str, str] | None = None) -> Launched:
        job = Launched(args, code, env)
        started.append(job)
        return job

    yield start
    for job in started:
        job.kill()


PRINT_PID = 'import os, sys, time\nprint("pid", os.getpid(), flush=True)\n'


# -- output and exit status ---------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("nranks", [1, 3], ids=lambda n: f"{n}ranks")
def test_launcher_prefixes_stdout_and_stderr_with_rank(launched, nranks):
    job = launched(["-n", str(nranks)], """
        import os, sys
        r = os.environ["MSCOMM_RANK"]
        print(f"out of {r} of {os.environ['MSCOMM_WORLD_SIZE']}", flush=True)
        print(f"err of {r}", file=sys.stderr, flush=True)
    """)
    assert job.wait(30) == 0, job.text()
    out_lines = job.stdout().splitlines()
    err_lines = [ln for ln in job.stderr().splitlines() if not ln.startswith("mscomm-run:")]
    for r in range(nranks):
        assert f"[{r}] out of {r} of {nranks}" in out_lines, job.text()
        assert f"[{r}] err of {r}" in err_lines, job.text()
    assert all(re.match(r"\[\d+\] ", ln) for ln in out_lines + err_lines), job.text()


@pytest.mark.timeout(60)
def test_launcher_no_prefix_passes_lines_unchanged(launched):
    job = launched(["-n", "2", "--no-prefix"], 'import os; print("rank", os.environ["MSCOMM_RANK"])')
    assert job.wait(30) == 0, job.text()
    assert sorted(job.stdout().splitlines()) == ["rank 0", "rank 1"], job.text()


@pytest.mark.timeout(60)
def test_launcher_gives_each_rank_a_distinct_rank_and_the_same_job(launched):
    job = launched(["-n", "3"], """
        import os
        e = os.environ
        print("env", e["MSCOMM_RANK"], e["MSCOMM_WORLD_SIZE"], e["MSCOMM_LOCAL_RANK"], e["MSCOMM_LOCAL_SIZE"],
              e["MSCOMM_JOB_TAG"], e["MSCOMM_UNIQUE_ID"], flush=True)
    """)
    assert job.wait(30) == 0, job.text()
    rows = [ln.split()[2:] for ln in job.stdout().splitlines() if " env " in ln]
    assert sorted(int(r[0]) for r in rows) == [0, 1, 2], job.text()
    assert {r[1] for r in rows} == {"3"}
    assert {r[2] for r in rows} == {r[0] for r in rows}, "local rank equals rank on one host"
    assert len({r[4] for r in rows}) == 1, "every rank must see the same job tag"
    assert len({r[5] for r in rows}) == 1, "every rank must see the same unique id"
    assert re.fullmatch(r"mscomm://127\.0\.0\.1:\d+/[0-9a-f]{64}", rows[0][5])


@pytest.mark.timeout(60)
def test_launcher_runs_a_real_allreduce_job_and_exits_0(launched):
    job = launched(["-n", "2"], """
        import numpy as np, mscomm
        comm = mscomm.init()
        x = np.full(1000, comm.rank + 1, dtype=np.float32)
        mscomm.allreduce(x)
        print("sum", int(x[0]), int(x[-1]), flush=True)
        mscomm.finalize()
    """)
    assert job.wait(40) == 0, job.text()
    assert sorted(ln for ln in job.stdout().splitlines() if "sum" in ln) == ["[0] sum 3 3", "[1] sum 3 3"]


@pytest.mark.timeout(60)
def test_launcher_force_tcp_sets_tcp_transport(launched):
    job = launched(["-n", "2", "--force-tcp"], """
        import mscomm
        comm = mscomm.init()
        print("transport", comm.transport_to(1 - comm.rank), flush=True)
        mscomm.finalize()
    """)
    assert job.wait(40) == 0, job.text()
    assert sorted(ln for ln in job.stdout().splitlines() if "transport" in ln) == ["[0] transport tcp",
                                                                                  "[1] transport tcp"]


# -- a failing rank ends the job ------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("failing_rank", [0, 1])
def test_launcher_failing_rank_ends_others_and_exits_with_its_status(launched, failing_rank):
    job = launched(["-n", "3"], PRINT_PID + f"""
        if int(os.environ["MSCOMM_RANK"]) == {failing_rank}:
            time.sleep(0.5)
            sys.exit(3)
        time.sleep(60)
    """)
    pids = job.wait_for_pids(3)
    rc = job.wait(30)
    assert rc == 3, job.text()
    assert job.elapsed < 15, f"the sleeping ranks were not ended promptly ({job.elapsed:.1f} s)\n{job.text()}"
    assert f"mscomm-run: rank {failing_rank} failed first: it exited with status 3" in job.stderr(), job.text()
    others = sorted(set(range(3)) - {failing_rank})
    assert f"ended ranks {others}" in job.stderr(), job.text()
    assert wait_dead(list(pids.values()), 5) == []


@pytest.mark.timeout(60)
def test_launcher_rank_killed_by_signal_exits_128_plus_signal(launched):
    job = launched(["-n", "2"], PRINT_PID + """
        if os.environ["MSCOMM_RANK"] == "1":
            time.sleep(0.5)
            os.kill(os.getpid(), 9)
        time.sleep(60)
    """)
    pids = job.wait_for_pids(2)
    rc = job.wait(30)
    assert rc == 128 + 9, job.text()
    assert "mscomm-run: rank 1 failed first: it was killed by signal 9" in job.stderr(), job.text()
    assert job.elapsed < 15, job.text()
    assert wait_dead(list(pids.values()), 5) == []


@pytest.mark.timeout(60)
def test_launcher_rank_that_ignores_sigterm_is_killed_after_grace(launched):
    job = launched(["-n", "2"], PRINT_PID + """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.environ["MSCOMM_RANK"] == "1":
            time.sleep(0.5)
            sys.exit(5)
        time.sleep(60)
    """)
    pids = job.wait_for_pids(2)
    rc = job.wait(40)
    assert rc == 5, job.text()
    assert job.elapsed < 25, job.text()
    assert wait_dead(list(pids.values()), 5) == []


@pytest.mark.timeout(60)
def test_launcher_timeout_exits_124_and_ends_ranks(launched):
    job = launched(["-n", "2", "--timeout", "2"], PRINT_PID + "time.sleep(60)\n")
    pids = job.wait_for_pids(2)
    rc = job.wait(30)
    assert rc == 124, job.text()
    assert "timed out after 2 s" in job.stderr(), job.text()
    assert "ranks still running: [0, 1]" in job.stderr(), job.text()
    assert job.elapsed < 15, job.text()
    assert wait_dead(list(pids.values()), 5) == []


# -- signals --------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: signal.Signals(s).name)
def test_launcher_forwards_signal_ends_ranks_and_exits_128_plus_signal(launched, sig):
    # The handlers are installed before the pid is printed, so the signal cannot arrive too early.
    job = launched(["-n", "2"], """
        import os, signal, sys, time
        def note(signum, frame):
            print("got", signal.Signals(signum).name, flush=True)
            sys.exit(1)
        signal.signal(signal.SIGINT, note)
        signal.signal(signal.SIGTERM, note)
        print("pid", os.getpid(), flush=True)
        time.sleep(60)
    """)
    pids = job.wait_for_pids(2)
    os.kill(job.proc.pid, sig)
    rc = job.wait(30)
    assert rc == 128 + sig, job.text()
    assert "interrupted" in job.stderr(), job.text()
    name = signal.Signals(sig).name
    for r in range(2):
        assert f"[{r}] got {name}" in job.stdout().splitlines(), f"rank {r} did not receive {name}\n{job.text()}"
    assert job.elapsed < 15, job.text()
    assert wait_dead(list(pids.values()), 5) == []


@pytest.mark.timeout(60)
def test_launcher_sigint_ends_ranks_blocked_in_a_collective(launched):
    # Rank 1 never joins the allreduce, so rank 0 is blocked inside C++ when Ctrl-C arrives.
    job = launched(["-n", "2"], PRINT_PID + """
        import numpy as np, mscomm
        comm = mscomm.init(timeout=120)
        comm.barrier()
        if comm.rank == 0:
            print("entering", flush=True)
            mscomm.allreduce(np.ones(1 << 16, dtype=np.float32))
        time.sleep(60)
    """, env=clean_env(MSCOMM_SHUTDOWN_TIMEOUT="3"))
    pids = job.wait_for_pids(2)
    deadline = time.monotonic() + 20
    while "[0] entering\n" not in job.out and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(job.proc.pid, signal.SIGINT)
    rc = job.wait(30)
    assert rc == 130, job.text()
    assert wait_dead(list(pids.values()), 5) == []


@pytest.mark.timeout(60)
def test_launcher_sigkill_takes_ranks_down_with_it(launched):
    job = launched(["-n", "2"], PRINT_PID + "time.sleep(60)\n")
    pids = job.wait_for_pids(2)
    os.kill(job.proc.pid, signal.SIGKILL)  # only the launcher, not its process group
    job.proc.wait(timeout=10)
    left = wait_dead(list(pids.values()), 10)
    assert left == [], f"ranks {left} outlived a SIGKILLed launcher"


# -- shared memory cleanup ------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_launcher_sweeps_segments_of_killed_ranks(launched):
    # A rank killed while its registered memory is still linked leaves a segment; mscomm-run removes it.
    job = launched(["-n", "2"], """
        import glob, os, signal, mscomm
        comm = mscomm.init()
        mem = comm.register_memory(1 << 16)
        tag = os.environ["MSCOMM_JOB_TAG"]
        print("tag", tag, "segments", len(glob.glob(f"/dev/shm/mscomm-{tag}-*")), flush=True)
        comm.barrier()
        if comm.rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        import time
        time.sleep(60)
    """)
    rc = job.wait(40)
    assert rc == 137, job.text()
    tags = set(re.findall(r"tag ([0-9a-f]+) segments (\d+)", job.stdout()))
    assert len({t for t, _ in tags}) == 1, job.text()
    tag = next(iter(tags))[0]
    assert any(int(n) > 0 for _, n in tags), f"register_memory left no linked segment to sweep\n{job.text()}"
    assert not mscomm_segments([tag]), job.text()
    assert "removed" in job.stderr() and "shared-memory segment" in job.stderr(), job.text()


@pytest.mark.timeout(60)
def test_launcher_clean_job_leaves_no_segments(launched):
    job = launched(["-n", "2"], """
        import os, numpy as np, mscomm
        comm = mscomm.init()
        print("tag", os.environ["MSCOMM_JOB_TAG"], flush=True)
        mscomm.allreduce(np.ones(1 << 18, dtype=np.float32))
        mscomm.finalize()
    """)
    assert job.wait(40) == 0, job.text()
    tag = re.findall(r"tag ([0-9a-f]+)", job.stdout())[0]
    assert mscomm_segments([tag]) == set()
    assert "removed" not in job.stderr(), "a clean job should leave nothing for the launcher to sweep"


# -- usage errors ---------------------------------------------------------------------------------

@pytest.mark.timeout(30)
@pytest.mark.parametrize("argv, message", [
    (["-n", "2"], "no command given"),
    (["-n", "2", "--"], "no command given"),
    (["-n", "0", "true"], "-n must be at least 1"),
    (["-n", "-3", "true"], "-n must be at least 1"),
    (["true"], "required: -n"),
    (["-n", "two", "true"], "invalid int value"),
], ids=["no-command", "dashdash-only", "n0", "n-negative", "no-n", "n-not-int"])
def test_launcher_bad_usage_is_argparse_error_exit_2(argv, message):
    p = subprocess.run([*LAUNCHER, *argv], capture_output=True, text=True, env=clean_env(), timeout=20)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr, p.stderr
    assert "usage: mscomm-run" in p.stderr


@pytest.mark.timeout(30)
def test_launcher_missing_program_exits_127_naming_it():
    p = subprocess.run([*LAUNCHER, "-n", "2", "--", "/nonexistent/mscomm-no-such-program"], capture_output=True,
                       text=True, env=clean_env(), timeout=20)
    assert p.returncode == 127, p.stderr
    assert "cannot start '/nonexistent/mscomm-no-such-program'" in p.stderr, p.stderr


def test_launcher_main_returns_exit_code_in_process(capfd):
    from mscomm.launcher import main

    assert main(["-n", "2", "--", sys.executable, "-c", "import sys; sys.exit(0)"]) == 0
    assert main(["-n", "2", "--", sys.executable, "-c", "import os, sys; sys.exit(int(os.environ['MSCOMM_RANK']) * 4)"]) == 4
    with pytest.raises(SystemExit) as e:
        main(["-n", "0", "true"])
    assert e.value.code == 2
    capfd.readouterr()
