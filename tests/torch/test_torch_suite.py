"""torch's own distributed test body, ``DistributedTest._DistTestBase``, at world size 2 on CPU
(the runner is dist_suite.py), with gloo as the reference: every test gloo passes must pass on
mscomm, except the tests of APIs torch documents as gloo-only, and for those the refusal must be
torch's own. Both backends run at once, each test in two fresh forked ranks (about a minute
each here). See docs/torch.md for the counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

# Tests gloo passes that mscomm is not expected to: APIs torch documents as gloo-only, with the
# text of torch's own refusal (raised by torch before any backend is called).
GLOO_ONLY = {
    # torch.distributed.monitored_barrier: "only supported with GLOO backend" (its docstring);
    # distributed_c10d refuses every other backend. group.monitored_barrier() called on an mscomm
    # group works (test_monitored_barrier_gloo_rank_0_timeout passes).
    "test_monitored_barrier_gloo": "monitored_barrier is only implemented for GLOO backend",
    "test_monitored_barrier_gloo_subgroup": "monitored_barrier is only implemented for GLOO backend",
}


def _start(backend: str, out: str, only: list[str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    select = ["-k", "^(" + "|".join(only) + ")$"] if only else []
    return subprocess.Popen([sys.executable, os.path.join(HERE, "dist_suite.py"), "--backend", backend,
                             "--world-size", "2", "--timeout", "120", "--json", out, *select],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _rows(path: str) -> dict:
    with open(path) as f:
        return {r["test"]: r for r in json.load(f)["rows"]}


@pytest.mark.timeout(900)
def test_dist_test_base_world_size_2(tmp_path):
    outs = {b: str(tmp_path / f"{b}.json") for b in ("gloo", "mscomm")}
    procs = {b: _start(b, outs[b]) for b in outs}
    logs = {b: p.communicate(timeout=880)[0] for b, p in procs.items()}
    rows = {}
    for b, path in outs.items():
        assert os.path.exists(path), f"{b} run wrote no result:\n{logs[b][-5000:]}"
        rows[b] = _rows(path)
    gloo_pass = sorted(t for t, r in rows["gloo"].items() if r["outcome"] == "pass")
    ms = rows["mscomm"]
    # Both suites run at once, and the suite's own file barrier between steps allows 10 s, which a
    # rank of a heavily loaded machine can miss. A test gloo passes and mscomm fails is run once
    # more, alone; one that passes then is reported (a warning naming it), not counted as passing
    # silently.
    again = [t for t in gloo_pass if t not in GLOO_ONLY and ms.get(t, {}).get("outcome") != "pass"]
    flaky = []
    if again:
        retry = str(tmp_path / "mscomm-retry.json")
        _start("mscomm", retry, again).communicate(timeout=600)
        for t, r in (_rows(retry) if os.path.exists(retry) else {}).items():
            if r["outcome"] == "pass":
                flaky.append(t)
                ms[t] = r
    if flaky:
        import warnings

        warnings.warn(f"_DistTestBase on mscomm: passed only when run again alone: {flaky}")
    assert len(gloo_pass) >= 85, f"gloo passed only {len(gloo_pass)} tests: the runner is broken\n{logs['gloo'][-5000:]}"
    stale = sorted(t for t in GLOO_ONLY if t not in gloo_pass)
    assert not stale, f"GLOO_ONLY names tests gloo does not pass (remove them): {stale}"
    problems = []
    for name in gloo_pass:
        row = ms.get(name, {"outcome": "missing", "detail": ""})
        if name in GLOO_ONLY:
            if row["outcome"] == "pass" or GLOO_ONLY[name] not in row["detail"]:
                problems.append(f"{name}: expected torch's own refusal {GLOO_ONLY[name]!r}, got {row['outcome']}:\n"
                                f"{row['detail'][-1500:]}")
        elif row["outcome"] != "pass":
            problems.append(f"{name}: {row['outcome']} on mscomm (gloo passes it):\n{row['detail'][-2500:]}")
    ms_pass = sum(r["outcome"] == "pass" for r in ms.values())
    print(f"_DistTestBase world size 2: gloo {len(gloo_pass)} pass, mscomm {ms_pass} pass "
          f"({len(GLOO_ONLY)} gloo-only by torch's documentation; passed on a rerun: {flaky})")
    assert not problems, "\n\n".join(problems)
