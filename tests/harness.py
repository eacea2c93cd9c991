"""Multi-process test harness: every job runs real rank processes, bounded by a timeout; the
autouse fixture in conftest.py checks that no shared-memory segment outlives a test."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence


from mscomm.launcher import job_environment, new_job

RESULT_MARK = "@@mscomm-test@@ "

# Imported by every rank script: `emit(obj)` reports a JSON value back to the test.
PRELUDE = f'''
import json, os, sys, time
import numpy as np
import mscomm
RANK = int(os.environ.get("MSCOMM_RANK", "0"))
SIZE = int(os.environ.get("MSCOMM_WORLD_SIZE", "1"))
def emit(obj):
    print({RESULT_MARK!r} + json.dumps(obj), flush=True)
def error_name(e):
    return type(e).__name__
'''


@dataclass
class RankResult:
    rank: int
    returncode: int | None
    stdout: str
    stderr: str
    elapsed: float
    results: list = field(default_factory=list)

    def describe(self) -> str:
        return f"rank {self.rank} exit {self.returncode}\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


@dataclass
class Job:
    ranks: list[RankResult]
    unique_id: str
    job_tag: str

    def __getitem__(self, r: int) -> RankResult:
        return self.ranks[r]

    def check_ok(self) -> "Job":
        bad = [r for r in self.ranks if r.returncode != 0]
        assert not bad, "\n".join(r.describe() for r in bad)
        return self

    def results(self, rank: int = 0) -> list:
        return self.ranks[rank].results


def start_rank(script: str, rank: int, nranks: int, unique_id: str, job_tag: str, env: dict | None,
               args: Sequence[str] = ()) -> subprocess.Popen:
    extra = {k: str(v) for k, v in (env or {}).items()}
    return subprocess.Popen([sys.executable, script, *args], env=job_environment(rank, nranks, unique_id, job_tag, extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run_job(nranks: int, code: str, *, env: dict | None = None, timeout: float = 60.0,
            start: Iterable[int] | None = None, args: Sequence[str] = (), during=None) -> Job:
    """Run `code` (with PRELUDE) as `nranks` ranks; only ranks in `start` are started.

    `during(procs)` runs while the ranks run (fault injection). Ranks still alive after `timeout`
    seconds are killed (their returncode is then None) so a hang fails the test instead of
    blocking it.
    """
    unique_id, job_tag = new_job()
    STARTED_TAGS.append(job_tag)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PRELUDE + textwrap.dedent(code))
        script = f.name
    ranks = list(range(nranks)) if start is None else list(start)
    procs: dict[int, subprocess.Popen] = {}
    t0 = time.monotonic()
    try:
        for r in ranks:
            procs[r] = start_rank(script, r, nranks, unique_id, job_tag, env, args)
        if during is not None:
            during(procs)
        out: dict[int, tuple[str, str, int | None, float]] = {}
        for r, p in procs.items():
            left = max(0.1, timeout - (time.monotonic() - t0))
            try:
                so, se = p.communicate(timeout=left)
                out[r] = (so, se, p.returncode, time.monotonic() - t0)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                so, se = p.communicate()
                out[r] = (so, se + "\n[test harness: killed after timeout]", None, time.monotonic() - t0)
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        os.unlink(script)
    results = []
    for r in ranks:
        so, se, rc, el = out[r]
        parsed = [json.loads(line[len(RESULT_MARK):]) for line in so.splitlines() if line.startswith(RESULT_MARK)]
        results.append(RankResult(r, rc, so, se, el, parsed))
    return Job(results, unique_id, job_tag)


# Job tags of every job this test session started; conftest checks that none left segments.
STARTED_TAGS: list[str] = []
# Communicators created inside the pytest process itself get this session's own tag, so
# concurrent test sessions on one machine never count each other's segments.
SESSION_TAG = f"pytest{os.getpid()}"
os.environ["MSCOMM_JOB_TAG"] = SESSION_TAG


def mscomm_segments(tags: Iterable[str]) -> set[str]:
    return {path for tag in tags for path in glob.glob(f"/dev/shm/mscomm-{tag}-*")}


def transports_env(transport: str) -> dict:
    """shm: one host; tcp: every rank its own host; 2perhost: hosts of two ranks (shm within, TCP between)."""
    if transport == "tcp":
        return {"MSCOMM_FORCE_TCP": "1"}
    if transport == "2perhost":
        return {"TEST_RANKS_PER_HOST": "2"}
    return {}
