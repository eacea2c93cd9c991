"""mscomm-bench --compare with the peers from their own venvs (openmpi, impi, oneccl, deepspeed).

No peer needs to be installed: the argument handling, the missing-peer messages and the report
rows are checked with a fake peer (a venv made of this venv's python and MPICH's mpiexec, which
runs the same worker and the same bootstrap, run.py, as a real MPI peer). Real peers are run
where benchmarks/install_peers.sh installed them, and skipped otherwise.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys

import pytest

from mscomm.bench import peers
from mscomm.bench.cli import main

FAST = ["--reps", "2", "--warmup", "1", "--iters", "3", "--timeout", "240"]
SIZES = [4096, 16384]
ROW_KEYS = {"bytes", "count", "dtype", "op", "time_us", "time_us_min", "time_us_max", "algbw", "busbw", "wrong",
            "times_us"}


def mpich_mpiexec() -> str | None:
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else shutil.which("mpiexec")


@pytest.fixture
def no_peers(tmp_path, monkeypatch):
    """An empty peers directory and no per-peer overrides."""
    monkeypatch.setenv("MSCOMM_PEERS_DIR", str(tmp_path / "peers"))
    for p in peers.PEERS.values():
        monkeypatch.delenv(p.env, raising=False)
    return tmp_path / "peers"


@pytest.fixture
def fake_openmpi(no_peers, monkeypatch):
    """A venv that passes for Open MPI's: this python with mpi4py, and MPICH's mpiexec."""
    pytest.importorskip("mpi4py")
    mpiexec = mpich_mpiexec()
    if not mpiexec:
        pytest.skip("mpiexec not found")
    import mpi4py

    v = no_peers / "openmpi"
    (v / "bin").mkdir(parents=True)
    # Wrappers, not links: hydra finds its proxy next to its own path, python its venv next to its own.
    for name, target in (("python", sys.executable), ("mpiexec", mpiexec)):
        wrapper = v / "bin" / name
        wrapper.write_text(f"#!/bin/sh\nexec {target} \"$@\"\n")
        wrapper.chmod(0o755)
    site = v / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    os.symlink(os.path.dirname(mpi4py.__file__), site / "mpi4py")
    return v


def bench(tmp_path, *argv: str) -> dict:
    out = tmp_path / "report.json"
    assert main([*argv, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def by_backend(report: dict) -> dict:
    return {r["backend"]: r for r in report["results"]}


def check_peer_rows(rows: list[dict], sizes: list[int], nranks: int, reps: int) -> None:
    assert [r["bytes"] for r in rows] == sizes
    for r in rows:
        assert set(r) == ROW_KEYS, r
        assert r["count"] == r["bytes"] // 4 and r["dtype"] == "float32" and r["op"] == "sum", r
        assert len(r["times_us"]) == reps, r
        assert r["time_us_min"] <= r["time_us"] <= r["time_us_max"], r
        assert r["busbw"] == pytest.approx(r["algbw"] * 2 * (nranks - 1) / nranks, rel=1e-6), r


@pytest.mark.timeout(60)
@pytest.mark.parametrize("peer", ["openmpi", "impi", "oneccl", "deepspeed"])
def test_named_peer_not_installed_says_what_to_install(no_peers, peer):
    with pytest.raises(SystemExit) as e:
        main(["allreduce", "-n", "2", "--min", "4K", "--max", "4K", "--compare", peer, *FAST])
    msg = str(e.value.code)
    assert f"--compare {peer}: {peer}" in msg and "is not installed" in msg, msg
    assert f"benchmarks/install_peers.sh {peer}" in msg and f"MSCOMM_{peer.upper()}_VENV" in msg, msg
    assert str(no_peers / peer) in msg, msg


@pytest.mark.timeout(60)
def test_unknown_peer_lists_the_new_ones(no_peers):
    with pytest.raises(SystemExit) as e:
        main(["allreduce", "--compare", "nccl", *FAST])
    msg = str(e.value.code)
    for p in ("gloo", "mpi", "openmpi", "impi", "oneccl", "deepspeed", "all"):
        assert p in msg, msg


@pytest.mark.timeout(60)
def test_peer_env_var_overrides_peers_dir(no_peers, tmp_path, monkeypatch):
    monkeypatch.setenv("MSCOMM_IMPI_VENV", str(tmp_path / "elsewhere"))
    assert peers.PEERS["impi"].venv() == str(tmp_path / "elsewhere")
    assert str(tmp_path / "elsewhere") in peers.PEERS["impi"].missing()
    monkeypatch.delenv("MSCOMM_IMPI_VENV")
    assert peers.PEERS["impi"].venv() == str(no_peers / "impi")


@pytest.mark.parametrize("peer, collective, dtype, op, expect", [
    ("deepspeed", "allgather", "float32", "sum", "no allgather"),
    ("deepspeed", "allreduce", "float64", "sum", "no float64"),
    ("deepspeed", "allreduce", "float32", "max", "no max reduction"),
    ("oneccl", "sendrecv", "float32", "sum", "no sendrecv"),
    ("oneccl", "allreduce", "float32", "sum", None),
    ("openmpi", "barrier", "float32", "sum", None),
], ids=lambda v: str(v))
def test_peer_support_table(peer, collective, dtype, op, expect):
    why = peers.PEERS[peer].unsupported(collective, dtype, op)
    assert (why is None) if expect is None else (expect in why), why


@pytest.mark.timeout(240)
def test_fake_peer_rows_table_and_passes(fake_openmpi, tmp_path, capfd):
    """The fake Open MPI venv runs through the real path: run.py, mpi_worker --name, two passes."""
    report = bench(tmp_path, "allreduce", "-n", "2", "--min", "4K", "--max", "16K", "--compare", "openmpi", *FAST)
    res = by_backend(report)
    assert set(res) == {"mscomm", "openmpi"}
    assert report["passes"] == 2 and report["reps"] == 2
    check_peer_rows(res["openmpi"]["rows"], SIZES, 2, reps=2)  # one repetition from each pass
    assert len(res["mscomm"]["in_place"][0]["times_us"]) == 2
    assert res["openmpi"]["library"]  # the MPI library's own name
    out = capfd.readouterr().out
    assert "openmpi(us)" in out and "x-openmpi" in out and "over 2 alternating passes" in out, out


@pytest.mark.timeout(240)
def test_compare_all_skips_missing_peers_with_a_note(fake_openmpi, tmp_path, capfd):
    report = bench(tmp_path, "allreduce", "-n", "2", "--min", "4K", "--max", "4K", "--compare", "all", "--passes", "1",
                   *FAST)
    res = by_backend(report)
    assert "openmpi" in res and not {"impi", "oneccl", "deepspeed"} & set(res)
    for p in ("impi", "oneccl", "deepspeed"):
        assert any(n.startswith(f"skipped {p} ") and "install_peers.sh" in n for n in report["notes"]), report["notes"]
    assert "# note: skipped oneccl" in capfd.readouterr().out


@pytest.mark.timeout(240)
def test_peer_without_the_collective_says_na(fake_openmpi, tmp_path, capfd, monkeypatch):
    """A peer that lacks the call is not launched: its rows are n/a with the reason."""
    monkeypatch.setitem(peers.PEERS, "openmpi", peers.Peer(
        "openmpi", "Fake MPI", "MSCOMM_OPENMPI_VENV", peers.PEERS["openmpi"].needs, ("allreduce",), None, None,
        peers.run_mpi))
    report = bench(tmp_path, "allgather", "-n", "2", "--min", "4K", "--max", "16K", "--compare", "openmpi", *FAST)
    rows = by_backend(report)["openmpi"]["rows"]
    assert [r["bytes"] for r in rows] == SIZES and all("no allgather" in r["error"] for r in rows), rows
    assert any("openmpi: n/a: Fake MPI has no allgather" in n for n in report["notes"]), report["notes"]
    out = capfd.readouterr().out
    assert "n/a" in out and "# note: openmpi: n/a" in out, out


@pytest.mark.timeout(120)
def test_barrier_is_one_row_of_zero_bytes(tmp_path):
    report = bench(tmp_path, "barrier", "-n", "2", "--check", *FAST)
    rows = by_backend(report)["mscomm"]["rows"]
    assert [r["bytes"] for r in rows] == [0] and rows[0]["time_us"] > 0, rows


def installed(name: str) -> bool:
    return peers.PEERS[name].missing() is None


@pytest.mark.timeout(600)
@pytest.mark.parametrize("peer", ["openmpi", "impi", "oneccl", "deepspeed"])
def test_real_peer_where_installed(peer, tmp_path):
    if not installed(peer):
        pytest.skip(f"{peer} not installed (benchmarks/install_peers.sh {peer})")
    report = bench(tmp_path, "allreduce", "-n", "2", "--min", "4K", "--max", "16K", "--compare", peer, *FAST)
    check_peer_rows(by_backend(report)[peer]["rows"], SIZES, 2, reps=2)
    leftovers = [n for n in glob.glob("/dev/shm/*") if "deepspeed" in n]
    assert not leftovers, f"DeepSpeed's segments were left behind: {leftovers}"


def test_max_iters_caps_every_backend_alike():
    import argparse

    from mscomm.bench.sizes import iterations_for
    from mscomm.bench.timing import iterations

    a = argparse.Namespace(iters=None, max_iters=100, collective="allreduce", dtype="float32", op="sum", warmup=1,
                           reps=2)
    assert iterations_for(4096) > 100 and iterations(a, 4096) == 100
    assert iterations(a, 64 << 20) == iterations_for(64 << 20)  # large sizes keep their count
    assert iterations(argparse.Namespace(iters=7, max_iters=100), 4096) == 7
    assert peers.worker_args(a, [4096], "out.json")[-2:] == ["--max-iters", "100"]  # what every worker is told
