"""The bundled Sigma trainer, run for real: `python -m mscomm.sigma` with several ranks.

- equivalence: the same seed and global batch give the same losses with 1 rank holding every
  expert and with 4 ranks (EP 2 x DP 2), on mscomm (bucketed allreduce) and on gloo (DDP);
- resume: stop at step k, resume, and the losses equal the uninterrupted run's;
- bad input fails before training with a clear message.
Small models, so the whole file runs in a couple of minutes on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import mscomm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--layers", "2", "--dim", "32", "--experts", "8", "--expert-hidden", "32", "--head-dim", "8",
        "--q-heads", "4", "--k-heads", "1", "--v-heads", "2", "--seq", "32", "--batch", "8", "--val-seqs", "8",
        "--val-every", "10", "--topk-schedule", "2,2@6;2@12", "--no-progress", "--lr", "3e-3", "--warmup", "4"]


def train(out, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    # the mscomm this test imported (installed, or the source tree with its built core)
    here = os.path.dirname(os.path.dirname(os.path.abspath(mscomm.__file__)))
    env = dict(os.environ, PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "mscomm.sigma", *TINY, "--out", str(out), *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and every rank it started
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} ran past {timeout} s\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def summary(out) -> dict:
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One rank holding all 8 experts, 20 steps."""
    out = tmp_path_factory.mktemp("ref")
    ok(train(out, "--steps", "20", "--ranks", "1"))
    return summary(out)


def assert_same_run(got: dict, want: dict, rtol: float) -> None:
    np.testing.assert_allclose(got["train_loss"], want["train_loss"], rtol=rtol, atol=0)
    np.testing.assert_allclose([v["loss"] for v in got["val"]], [v["loss"] for v in want["val"]], rtol=rtol, atol=0)
    assert got["topk"] == want["topk"]


@pytest.mark.parametrize("backend,grad_sync", [("mscomm", "buckets"), ("gloo", "ddp")],
                         ids=["mscomm/buckets/4ranks/ep2", "gloo/ddp/4ranks/ep2"])
def test_expert_parallel_equals_one_rank(tmp_path, reference, backend, grad_sync):
    ok(train(tmp_path, "--steps", "20", "--ranks", "4", "--ep", "2", "--backend", backend, "--grad-sync", grad_sync))
    got = summary(tmp_path)
    assert (got["layout"]["world"], got["layout"]["ep"], got["layout"]["backend"]) == (4, 2, backend)
    assert len(got["train_loss"]) == 20
    assert_same_run(got, reference, rtol=2e-4)
    # The routing saw the same tokens: per-layer expert loads agree (ties aside) step by step.
    diff = np.abs(np.asarray(got["expert_loads"]) - np.asarray(reference["expert_loads"])).sum()
    assert diff <= 4, f"expert loads differ by {diff} assignments"
    assert got["mean"]["comm_s_per_step"] > 0
    assert os.path.getsize(os.path.join(tmp_path, "summary.png")) > 1000


RESUME = ["--steps", "12", "--ranks", "2", "--ep", "2"]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """12 steps on 2 ranks (EP 2) straight through, and stopped at step 6 then resumed."""
    full, part = tmp_path_factory.mktemp("full"), tmp_path_factory.mktemp("part")
    ok(train(full, *RESUME))
    ok(train(part, *RESUME, "--stop-at", "6"))
    stopped = summary(part)
    assert os.path.exists(part / "checkpoint" / "experts-rank1.pt")
    ok(train(part, *RESUME, "--resume", str(part)))
    return summary(full), stopped, summary(part), part


def test_resume_repeats_the_uninterrupted_run(resumed):
    full, stopped, again, _ = resumed
    assert len(stopped["train_loss"]) == 6
    assert again["train_loss"] == full["train_loss"]
    assert again["val"] == full["val"]
    assert again["expert_loads"] == full["expert_loads"]


def bad(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("mscomm-sigma-train: error:"), proc.stderr
    for w in words:
        assert w in line, line
    assert "Traceback" not in proc.stderr


def test_experts_not_divisible_by_ep(tmp_path):
    bad(train(tmp_path, "--ranks", "2", "--ep", "2", "--experts", "3", "--topk-schedule", "1"),
        "--experts=3", "--ep=2")
    assert not os.path.exists(tmp_path / "summary.json")


def test_data_too_small_for_one_batch(tmp_path):
    data = tmp_path / "tiny.txt"
    data.write_text("hello world " * 10)
    bad(train(tmp_path / "out", "--data", str(data)), "too small for one batch", "--batch=8")


def test_resume_from_another_configuration(tmp_path, resumed):
    part = resumed[-1]
    bad(train(tmp_path, *RESUME, "--resume", str(part), "--experts", "4"),
        "another configuration", "experts: checkpoint 8, now 4")
    bad(train(tmp_path, *RESUME[:2], "--resume", str(part)), "another configuration", "ranks: checkpoint 2, now 1")
    bad(train(tmp_path, *RESUME, "--resume", str(tmp_path / "missing")), "no checkpoint")


def test_topk_schedule_parsing():
    from mscomm.sigma import SigmaError, TopkSchedule

    s = TopkSchedule.parse("4,2@0.25;2@10", layers=3, experts=8, steps=20)
    assert [s.topk(i) for i in (0, 4, 5, 9, 10, 19)] == [(4, 2, 1), (4, 2, 1), (2, 1, 1), (2, 1, 1), (1, 1, 1), (1, 1, 1)]
    assert TopkSchedule.parse("1", 2, 8, 10).topk(0) == (1, 1)
    short = TopkSchedule.parse("2,2@0.2;2@0.4", layers=2, experts=8, steps=3)  # the fractions round to 1, 1
    assert [short.topk(i) for i in range(3)] == [(2, 2), (1, 1), (1, 1)]
    for text in ("2,2,2,2@5", "9@3", "2@5;2@4", "two"):
        with pytest.raises(SigmaError):
            TopkSchedule.parse(text, layers=3, experts=8, steps=20)
