"""``mscomm-run --emulate``: hosts of a topology as network namespaces joined by shaped veths.

The fabric planning tests run anywhere. The rest build real namespaces (root, iproute2) and are
skipped with the reason where that is impossible. Every such test ends by checking that nothing
of the emulation is left: no namespace in ``ip netns list``, no link in ``ip link``, no segment in
/dev/shm; each way a job can end (normal, a rank's crash, Ctrl-C, SIGTERM, the launcher killed
with SIGKILL and swept at the next start) has its own test.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import mscomm

from harness import PRELUDE, RESULT_MARK
from mscomm.emulate import EmulationError, check_environment, leftovers, plan_fabric, sweep
from mscomm.emulate import netns
from mscomm.emulate.runner import load_fabric
from mscomm.topology import zoo



def _why_no_namespaces() -> str | None:
    try:
        check_environment()
    except EmulationError as exc:
        return str(exc)
    probe = f"{netns.PREFIX}{netns._base36(os.getpid())}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    return None


_NO_NS = _why_no_namespaces()
needs_netns = pytest.mark.skipif(_NO_NS is not None, reason=f"emulation impossible: {_NO_NS}")


def nothing_left() -> None:
    left = leftovers()
    assert left == {"namespaces": [], "links": [], "shm": []}, f"emulation left behind: {left}"
    shm = [p for p in os.listdir("/dev/shm") if p.startswith("mscomm-mse")]
    assert not shm, shm


def launch(topology: str, script: str, *args: str, scale: float = 0.02, env: dict | None = None,
           tmp_path: Path) -> subprocess.Popen:
    path = tmp_path / "rank.py"
    path.write_text(PRELUDE + textwrap.dedent(script))
    # the mscomm this test imported (installed, or the source tree with its built core)
    here = os.path.dirname(os.path.dirname(os.path.abspath(mscomm.__file__)))
    environment = dict(os.environ, PYTHONPATH=here, MSCOMM_TIMEOUT="60", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "mscomm.launcher", "--emulate", topology, "--scale", str(scale),
                             "--timeout", "150", "--", sys.executable, str(path), *args],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def results(stdout: str) -> dict[int, list]:
    out: dict[int, list] = {}
    for line in stdout.splitlines():
        if RESULT_MARK in line:
            rank = int(line[1:line.index("]")])
            out.setdefault(rank, []).append(json.loads(line.split(RESULT_MARK, 1)[1]))
    return out


# -- planning (no root needed) ---------------------------------------------------------------

@pytest.mark.parametrize("topo", zoo.emulated_topologies(), ids=lambda t: t.name)
def test_every_emulated_topology_plans_one_host_per_box(topo):
    fabric = plan_fabric(topo, 0.002)
    assert len(fabric.hosts) == len(set(topo.hosts.values()))
    assert sorted(r for h in fabric.hosts for r in h.ranks) == list(range(topo.num_ranks))
    for h in fabric.hosts:
        assert {topo.hosts[topo.compute[r]] for r in h.ranks} == {h.index}


def test_rates_are_bandwidth_times_scale_and_host_cables_sum_their_links():
    fabric = plan_fabric(zoo.get("emu-2tier4x2"), 0.002)
    by_ends = {(c.a, c.b): c for c in fabric.cables}
    assert len(fabric.switches) == 3 and len(fabric.cables) == 6
    host0 = next(c for (a, b), c in by_ends.items() if "h0" in (a, b))
    assert host0.rate_ab == host0.rate_ba == 25 * 1e9 * 0.002
    assert fabric.path_rate(0, 3) == (12.5e9 * 0.002, 12.5)
    assert fabric.path_rate(0, 1) == (25e9 * 0.002, 25)
    unequal = plan_fabric(zoo.get("emu-unequal4x2"), 0.002)
    assert [float(c.nominal_ab) for c in unequal.cables] == [25, 25, 25, 12.5]
    assert unequal.path_rate(0, 3) == (25e6, 12.5)


@pytest.mark.parametrize("name, message", [
    ("dgx-a100x2", "has cables to both"),
    ("ring8", "has cables to both"),
    ("uniring8", "but not back"),
])
def test_unsupported_shapes_are_refused_naming_why(name, message):
    with pytest.raises(EmulationError, match=message):
        plan_fabric(zoo.get(name), 1)


def test_bad_scale_and_unknown_topology_are_refused():
    with pytest.raises(EmulationError, match="--scale must be positive"):
        plan_fabric(zoo.get("emu-equal2x2"), 0)
    with pytest.raises(EmulationError, match="no topology file or zoo topology named 'nope'"):
        load_fabric("nope")


def test_not_root_or_no_iproute2_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(EmulationError, match="must run as root"):
        check_environment()
    monkeypatch.setattr(netns.shutil, "which", lambda tool: None)
    with pytest.raises(EmulationError, match=r"needs ip and tc \(iproute2\)"):
        check_environment()


def test_launcher_reports_emulation_errors_with_status_2(capsys):
    from mscomm.launcher import main

    assert main(["--emulate", "dgx-a100x2", "--", "true"]) == 2
    assert "has cables to both" in capsys.readouterr().err
    assert main(["--emulate", "emu-equal2x2", "-n", "3", "--", "true"]) == 2
    assert "has 4 ranks; leave out -n" in capsys.readouterr().err


# -- real namespaces -------------------------------------------------------------------------

COLLECTIVES_ENV = {"MSCOMM_SHM_SLOT_BYTES": "8192", "MSCOMM_TCP_SLOT_BYTES": "4096"}


@needs_netns
@pytest.mark.timeout(240)
@pytest.mark.parametrize("topology, dtypes", [
    ("emu-equal2x2", None),  # shared memory within a host, TCP and hierarchical algorithms across
    ("emu-unequal4x1", '["float32", "int8", "bfloat16"]'),  # four hosts, one rank each: TCP only
], ids=["collectives/emu-equal2x2", "collectives/emu-unequal4x1"])
def test_every_collective_is_correct_across_emulated_hosts(topology, dtypes, tmp_path):
    from test_collectives import BODY

    body = BODY if dtypes is None else BODY.replace(
        'DTYPES = ["float16", "bfloat16", "float32", "float64", "int8", "int32", "int64", "uint8"]',
        f"DTYPES = {dtypes}")
    mark = 'emit({"failures"'
    body = body.replace(mark, WHERE_AM_I + mark, 1)
    proc = launch(topology, body, env=COLLECTIVES_ENV, tmp_path=tmp_path)
    out, err = proc.communicate(timeout=220)
    assert proc.returncode == 0, err[-4000:]
    got = results(out)
    fabric = load_fabric(topology)
    assert sorted(got) == list(range(fabric.topology.num_ranks)), err[-3000:]
    for rank, (where, res) in got.items():
        assert res["nfail"] == 0, f"rank {rank}: {res['failures']}"
    # Different hosts are different network stacks to mscomm: TCP between them, shm within.
    where = {rank: v[0] for rank, v in got.items()}
    for rank, w in where.items():
        host = fabric.host_of_rank(rank)
        assert w["hosts"] == len(fabric.hosts)
        assert w["local"] == [host.ranks.index(rank), len(host.ranks)]
        assert w["torch"] == [str(rank), str(fabric.topology.num_ranks), str(host.ranks.index(rank)),
                              str(len(host.ranks)), fabric.host_of_rank(0).address]
        assert w["netns"] != os.readlink("/proc/self/ns/net")
        for peer, transport in w["transports"].items():
            same = int(peer) in host.ranks
            assert transport == ("shm" if same else "tcp"), (rank, peer, transport)
            assert (where[int(peer)]["netns"] == w["netns"]) == same
    nothing_left()


TORCH_ACROSS_HOSTS = r'''
import torch, torch.distributed as dist
import mscomm.torch  # noqa: F401
dist.init_process_group("mscomm")   # RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from mscomm-run
t = torch.full((1000,), float(dist.get_rank() + 1))
dist.all_reduce(t)
n = dist.get_world_size()
out = torch.empty(n * 4)
dist.all_gather_into_tensor(out, torch.full((4,), float(dist.get_rank())))
emit({"sum": float(t[0]), "want": n * (n + 1) / 2, "gather": out[::4].tolist()})
dist.destroy_process_group()
'''


@needs_netns
@pytest.mark.timeout(240)
def test_torch_backend_across_emulated_hosts(tmp_path):
    """dist.init_process_group("mscomm") under --emulate: rank 0 hands out a bootstrap address the
    other hosts can reach (its MASTER_ADDR on the fabric, not loopback)."""
    proc = launch("emu-equal2x2", TORCH_ACROSS_HOSTS, env=COLLECTIVES_ENV, tmp_path=tmp_path)
    out, err = proc.communicate(timeout=220)
    assert proc.returncode == 0, err[-4000:]
    got = results(out)
    assert sorted(got) == [0, 1, 2, 3], err[-3000:]
    for rank, (res,) in got.items():
        assert res["sum"] == res["want"] and res["gather"] == [0.0, 1.0, 2.0, 3.0], (rank, res)
    nothing_left()


WHERE_AM_I = """
emit({"hosts": comm.num_hosts, "netns": os.readlink("/proc/self/ns/net"),
      "transports": {p: comm.transport_to(p) for p in range(comm.size) if p != comm.rank},
      "local": [int(os.environ["MSCOMM_LOCAL_RANK"]), int(os.environ["MSCOMM_LOCAL_SIZE"])],
      "torch": [os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR")]})
"""


WHO_AM_I = r'''
comm = mscomm.init()
emit({"pid": os.getpid(), "tcp": comm.transport_to(1 - RANK)})
mode = sys.argv[1] if len(sys.argv) > 1 else "end"
if mode == "crash" and RANK == 1:
    os._exit(3)
if mode in ("wait", "crash"):
    # a leftover segment of this job, as a killed rank would leave it
    open(f"/dev/shm/mscomm-{os.environ['MSCOMM_JOB_TAG']}-test{RANK}", "w").close()
    print("ready", flush=True)
    time.sleep(120)
mscomm.barrier()
mscomm.finalize()
'''


@pytest.fixture
def pair(tmp_path) -> str:
    """Two hosts of one rank each: the cheapest job that crosses the emulated network."""
    from mscomm.topology import save

    path = tmp_path / "emu-pair.json"
    save(zoo.emulated_cluster("emu-pair", [25, 25], 1), path)
    return str(path)


def _wait_ready(proc: subprocess.Popen, n: int) -> list[int]:
    pids, ready = [], 0
    deadline = time.monotonic() + 100
    while ready < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if RESULT_MARK in line:
            pids.append(json.loads(line.split(RESULT_MARK, 1)[1])["pid"])
        ready += line.rstrip().endswith("] ready")
    assert ready == n, f"only {ready} of {n} ranks got ready; stderr: {proc.stderr.read()[-3000:]}"
    return pids


def _gone(pids: list[int], within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{p}") and "Z" not in _state(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@needs_netns
@pytest.mark.timeout(120)
def test_a_rank_crash_ends_the_job_and_removes_everything(pair, tmp_path):
    proc = launch(pair, WHO_AM_I, "crash", tmp_path=tmp_path)
    out, err = proc.communicate(timeout=100)
    assert proc.returncode == 3, err[-3000:]
    assert "rank 1 failed first: it exited with status 3" in err
    pids = [v[0]["pid"] for v in results(out).values()]
    assert _gone(pids)
    nothing_left()


@needs_netns
@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_a_signal_to_the_launcher_ends_the_job_and_removes_everything(sig, status, pair, tmp_path):
    proc = launch(pair, WHO_AM_I, "wait", tmp_path=tmp_path)
    pids = _wait_ready(proc, 2)
    assert leftovers()["namespaces"], "the job's namespaces should exist while it runs"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err[-3000:]
    assert _gone(pids)
    nothing_left()


@needs_netns
@pytest.mark.timeout(120)
def test_a_killed_launcher_is_swept_at_the_next_start(pair, tmp_path):
    proc = launch(pair, WHO_AM_I, "wait", tmp_path=tmp_path)
    pids = _wait_ready(proc, 2)
    proc.kill()
    proc.communicate(timeout=30)
    assert _gone(pids), "ranks must die with their launcher (PR_SET_PDEATHSIG)"
    left = leftovers()
    assert len(left["namespaces"]) == 3 and len(left["shm"]) == 2, left
    removed = sweep()  # what every emulated start does first
    assert sorted(removed["namespaces"]) == sorted(left["namespaces"])
    nothing_left()


@needs_netns
def test_a_failed_build_is_a_clear_error_and_leaves_nothing(monkeypatch):
    real = netns._run

    def failing(args, what):
        if args[0] == "tc":
            args = args[:args.index("rate") + 1] + ["not-a-rate"]
        return real(args, what)

    monkeypatch.setattr(netns, "_run", failing)
    with pytest.raises(EmulationError, match=r"cannot shape .* to 500\.0 MB/s: `tc -n mse"):
        netns.build(load_fabric("emu-equal2x2", 0.02))
    nothing_left()


@needs_netns
def test_the_sweep_leaves_a_living_launchers_fabric_alone():
    net = netns.build(load_fabric("emu-equal4x1", 0.02))
    try:
        assert sweep() == {"namespaces": [], "links": [], "shm": []}
        assert len(leftovers()["namespaces"]) == 5
    finally:
        netns.teardown(net)
    nothing_left()
