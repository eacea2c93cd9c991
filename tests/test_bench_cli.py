"""mscomm-bench: the JSON report, the printed table, the peers it compares with, and usage errors.

Runs ``mscomm.bench.cli.main`` in this process (it launches the ranks itself) with few
repetitions, so each run takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from mscomm.bench.cli import main

FAST = ["--reps", "2", "--warmup", "1", "--timeout", "120"]
SIZES = [4096, 16384, 65536]


def run_bench(tmp_path, *extra: str) -> dict:
    out = tmp_path / "report.json"
    assert main(["allreduce", "--min", "4K", "--max", "64K", "--factor", "4", "--check", "--json", str(out),
                 *FAST, *extra]) == 0
    return json.loads(out.read_text())


def check_rows(rows: list[dict], nranks: int, *, checked: bool, factor: float | None = None) -> None:
    assert [r["bytes"] for r in rows] == SIZES
    factor = 2 * (nranks - 1) / nranks if factor is None else factor
    for r in rows:
        assert r["count"] == r["bytes"] // 4 and r["dtype"] == "float32" and r["op"] == "sum", r
        assert r["time_us"] > 0 and r["algbw"] > 0 and r["busbw"] > 0, r
        assert r["busbw"] == pytest.approx(r["algbw"] * factor, rel=1e-6), r
        if checked:
            assert r["wrong"] == 0, f"wrong results at {r['bytes']} B: {r}"


def by_backend(report: dict) -> dict:
    return {r["backend"]: r for r in report["results"]}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("nranks, transport", [(2, "shm"), (2, "tcp"), (3, "shm")],
                         ids=["shm/2ranks", "tcp/2ranks", "shm/3ranks"])
def test_bench_allreduce_json_report(tmp_path, capfd, nranks, transport):
    extra = ["-n", str(nranks)] + (["--force-tcp"] if transport == "tcp" else [])
    report = run_bench(tmp_path, *extra)
    assert report["nranks"] == nranks
    assert report["collective"] == "allreduce"
    ms = by_backend(report)["mscomm"]
    check_rows(ms["rows"], nranks, checked=True)
    check_rows(ms["in_place"], nranks, checked=True)
    algos = {str(b) for b in SIZES}
    assert set(ms["algorithms"]) >= algos, ms["algorithms"]
    valid = {"oneshot", "rsag", "direct", "ring"} if transport == "shm" else {"ring"}
    # "out-of-place/in-place" where the two differ
    assert {a for b in algos for a in ms["algorithms"][b].split("/")} <= valid, ms["algorithms"]
    table = capfd.readouterr().out
    assert f"# mscomm-bench allreduce: {nranks} ranks, float32 sum" in table
    for label in ("4KB", "16KB", "64KB"):
        assert label in table, table


@pytest.mark.timeout(240)
def test_bench_compare_gloo_adds_backend(tmp_path, capfd):
    pytest.importorskip("torch")
    report = run_bench(tmp_path, "-n", "2", "--compare", "gloo")
    res = by_backend(report)
    assert set(res) == {"mscomm", "gloo"}
    check_rows(res["gloo"]["rows"], 2, checked=False)
    assert "x-gloo" in capfd.readouterr().out


@pytest.mark.timeout(240)
@pytest.mark.parametrize("collective", ["allreduce", "alltoall"])
def test_bench_torch_backend_registered_checks_results(tmp_path, collective):
    """--backend torch --register: mscomm's tensors registered through mscomm.torch.register_tensor."""
    pytest.importorskip("torch")
    out = tmp_path / "report.json"
    assert main([collective, "-n", "2", "--min", "64K", "--max", "4M", "--factor", "8", "--backend", "torch",
                 "--register", "--compare", "gloo", "--check", "--json", str(out), *FAST]) == 0
    res = by_backend(json.loads(out.read_text()))
    assert set(res) == {"mscomm", "gloo"}
    assert [r["wrong"] for r in res["mscomm"]["rows"]] == [0, 0, 0], res["mscomm"]["rows"]


@pytest.mark.timeout(240)
def test_bench_compare_mpi_adds_backend(tmp_path, capfd):
    pytest.importorskip("mpi4py")
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not (os.path.exists(here) or shutil.which("mpiexec")):
        pytest.skip("mpiexec not found")
    report = run_bench(tmp_path, "-n", "2", "--compare", "mpi")
    res = by_backend(report)
    assert set(res) == {"mscomm", "mpi"}
    check_rows(res["mpi"]["rows"], 2, checked=False)
    assert "x-mpi" in capfd.readouterr().out


@pytest.mark.timeout(180)
@pytest.mark.parametrize("collective", ["reduce", "broadcast", "allgather", "reduce_scatter", "alltoall", "gather",
                                        "scatter", "sendrecv"])
def test_bench_every_collective_checks_results(tmp_path, collective):
    out = tmp_path / "report.json"
    assert main([collective, "-n", "3", "--min", "4K", "--max", "64K", "--factor", "4", "--reps", "2", "--warmup",
                 "1", "--iters", "3", "--check", "--json", str(out)]) == 0
    rows = by_backend(json.loads(out.read_text()))["mscomm"]["rows"]
    assert [r["wrong"] for r in rows] == [0, 0, 0], rows
    assert all(r["busbw"] > 0 for r in rows)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv", [
    ["allgatherv", "-n", "2"],
    ["bcast"],
    [],
], ids=["unknown-collective", "other-unknown-collective", "no-collective"])
def test_bench_bad_collective_is_usage_error(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "allreduce" in capsys.readouterr().err, "the usage error should list the valid collectives"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("peer", ["nccl", "gloo,foo"])
def test_bench_unknown_compare_peer_names_it(tmp_path, peer):
    with pytest.raises(SystemExit) as e:
        main(["allreduce", "-n", "2", "--min", "4K", "--max", "4K", "--compare", peer, *FAST])
    bad = peer.split(",")[-1]
    assert f"unknown --compare peer {bad!r}" in str(e.value.code), e.value.code
    assert "gloo" in str(e.value.code) and "mpi" in str(e.value.code)


@pytest.mark.timeout(60)
def test_bench_unknown_op_is_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["allreduce", "--op", "xor"])
    assert e.value.code == 2
    assert "xor" in capsys.readouterr().err
