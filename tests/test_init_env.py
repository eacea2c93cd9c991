"""mscomm.init() under each launcher it understands: mscomm-run, none, torchrun, mpirun, Slurm.

Processes are started by the tests (not by run_job) with an environment cleared of every launcher
variable, so that only the launcher being simulated is detected; each is bounded by a timeout and
its whole session is killed when the test ends.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from harness import RESULT_MARK, run_job
from mscomm.launch_env import expand_nodelist

LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_USE_AGENT_STORE")
LAUNCHER_PREFIXES = ("MSCOMM_", "OMPI_", "PMI_", "PMIX_", "SLURM_", "MPI_LOCAL", "HYDRA_", "TORCHELASTIC_")

SCRIPT_HEAD = f'''
import json, os, sys
import numpy as np
def emit(obj):
    print({RESULT_MARK!r} + json.dumps(obj), flush=True)
    # Launchers that share one stdout among ranks may interleave lines; a file per process does not.
    if os.environ.get("TEST_RESULT_DIR"):
        with open(os.path.join(os.environ["TEST_RESULT_DIR"], f"{{os.getpid()}}.json"), "a") as f:
            f.write(json.dumps(obj) + "\\n")
'''

# Reports who init() says we are and the result of a sum allreduce of (rank + 1).
ALLREDUCE_BODY = '''
import mscomm
comm = mscomm.init(timeout=30)
x = np.full(4097, comm.rank + 1, dtype=np.float32)
mscomm.allreduce(x)
emit({"rank": comm.rank, "size": comm.size, "sum": x.tolist()[:1] + x.tolist()[-1:],
      "same": mscomm.init() is comm and mscomm.get_default() is comm})
mscomm.finalize()
'''

# Reports the error init() raises.
INIT_ERROR_BODY = '''
import mscomm
try:
    mscomm.init(timeout=10)
    emit({"error": None})
except Exception as e:
    emit({"error": type(e).__name__, "message": str(e)})
'''


def clean_env(**extra: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in LAUNCHER_VARS and not k.startswith(LAUNCHER_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env["MSCOMM_BOOTSTRAP_TIMEOUT"] = "20"
    env["MSCOMM_SHUTDOWN_TIMEOUT"] = "5"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port_pair(offset: int = 17) -> int:
    """A port p such that p and p + offset were both free a moment ago."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            if p + offset > 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", p + offset))
                except OSError:
                    continue
                return p
    pytest.skip("no free port pair found")


def write_script(tmp_path, body: str, name: str = "rank.py") -> str:
    (tmp_path / "results").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(SCRIPT_HEAD + textwrap.dedent(body))
    return str(path)


def results_in(folder) -> list:
    """What every process of a one-command launch emitted (one file per process)."""
    return [json.loads(ln) for f in sorted(os.listdir(folder)) for ln in open(os.path.join(folder, f))]


def results_of(stdout: str) -> list:
    return [json.loads(ln[len(RESULT_MARK):]) for ln in stdout.splitlines() if ln.startswith(RESULT_MARK)]


def run_all(cmds_envs: list[tuple[list[str], dict[str, str]]], timeout: float) -> list[tuple[int | None, str, str]]:
    """Starts every command at once; returns (returncode, stdout, stderr), killing what overruns."""
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) for cmd, env in cmds_envs]
    out = []
    try:
        for p in procs:
            try:
                so, se = p.communicate(timeout=timeout)
                out.append((p.returncode, so, se))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                so, se = p.communicate()
                out.append((None, so, se + "\n[test: killed after timeout]"))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return out


def describe(outs) -> str:
    return "\n".join(f"--- proc {i} exit {rc}\n{so[-2000:]}\n{se[-3000:]}" for i, (rc, so, se) in enumerate(outs))


def assert_allreduce_ok(outs, size: int) -> None:
    assert all(rc == 0 for rc, _, _ in outs), describe(outs)
    got = [results_of(so) for _, so, _ in outs]
    assert all(len(g) == 1 for g in got), describe(outs)
    ranks = sorted(g[0]["rank"] for g in got)
    assert ranks == list(range(size)), describe(outs)
    total = size * (size + 1) / 2
    for g in got:
        assert g[0]["size"] == size
        assert g[0]["sum"] == [total, total]
        assert g[0]["same"], "init() twice must return the default communicator"


# -- mscomm-run and no launcher -------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("nranks", [2, 3], ids=lambda n: f"{n}ranks")
def test_init_mscomm_run_env(nranks):
    job = run_job(nranks, ALLREDUCE_BODY + '''
try:
    mscomm.get_default()
    emit("still default")
except mscomm.InvalidArgument as e:
    emit(str(e))
''', timeout=40).check_ok()
    total = nranks * (nranks + 1) / 2
    for r in range(nranks):
        first, after = job.results(r)
        assert first == {"rank": r, "size": nranks, "sum": [total, total], "same": True}
        assert "call mscomm.init() first" in after


@pytest.mark.timeout(60)
def test_init_without_launcher_is_single_rank(tmp_path):
    script = write_script(tmp_path, ALLREDUCE_BODY)
    outs = run_all([([sys.executable, script], clean_env())], timeout=40)
    assert_allreduce_ok(outs, 1)


@pytest.mark.timeout(60)
def test_init_rank_outside_world_is_invalid_argument():
    job = run_job(1, INIT_ERROR_BODY, env={"MSCOMM_RANK": "5", "MSCOMM_WORLD_SIZE": "2"}, timeout=30).check_ok()
    res = job.results(0)[0]
    assert res["error"] == "InvalidArgument", res
    assert "rank 5" in res["message"] and "0..1" in res["message"], res


@pytest.mark.timeout(60)
def test_init_non_integer_rank_names_the_variable(tmp_path):
    script = write_script(tmp_path, INIT_ERROR_BODY)
    env = clean_env(MSCOMM_UNIQUE_ID="mscomm://127.0.0.1:1/" + "0" * 64, MSCOMM_RANK="zero", MSCOMM_WORLD_SIZE=2)
    outs = run_all([([sys.executable, script], env)], timeout=30)
    assert outs[0][0] == 0, describe(outs)
    res = results_of(outs[0][1])[0]
    assert res["error"] == "InvalidArgument", res
    assert "MSCOMM_RANK" in res["message"] and "zero" in res["message"], res


# -- torchrun -------------------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_init_torchrun_2ranks_torch_tensor_allreduce(tmp_path):
    pytest.importorskip("torch")
    script = write_script(tmp_path, '''
import torch, mscomm
comm = mscomm.init(timeout=60)
t = torch.full((1000,), float(comm.rank + 1))
mscomm.allreduce(t)
x = np.full(4097, comm.rank + 1, dtype=np.int64)
mscomm.allreduce(x, "max")
emit({"rank": comm.rank, "size": comm.size, "env_rank": int(os.environ["RANK"]),
      "t": [t[0].item(), t[-1].item()], "x": [int(x[0]), int(x[-1])]})
mscomm.finalize()
''')
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", script]
    outs = run_all([(cmd, clean_env(OMP_NUM_THREADS="1", TEST_RESULT_DIR=tmp_path / "results"))], timeout=150)
    rc, so, se = outs[0]
    assert rc == 0, describe(outs)
    got = sorted(results_in(tmp_path / "results"), key=lambda g: g["rank"])
    assert [g["rank"] for g in got] == [0, 1], describe(outs)
    for g in got:
        assert g["env_rank"] == g["rank"]
        assert g["size"] == 2
        assert g["t"] == [3.0, 3.0]
        assert g["x"] == [2, 2]


@pytest.mark.timeout(60)
def test_init_torchrun_env_without_torch_uses_mscomm_secret(tmp_path):
    # torch hidden: rank 0 serves the bootstrap on MASTER_PORT + 17 with the shared secret.
    script = write_script(tmp_path, 'sys.modules["torch"] = None\n' + ALLREDUCE_BODY)
    port, secret = free_port_pair(), secrets.token_hex(32)
    outs = run_all([([sys.executable, script],
                     clean_env(RANK=r, WORLD_SIZE=2, LOCAL_RANK=r, MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                               MSCOMM_SECRET=secret)) for r in range(2)], timeout=40)
    assert_allreduce_ok(outs, 2)


@pytest.mark.timeout(60)
def test_init_torchrun_env_without_torch_or_secret_names_mscomm_secret(tmp_path):
    script = write_script(tmp_path, 'sys.modules["torch"] = None\n' + INIT_ERROR_BODY)
    outs = run_all([([sys.executable, script],
                     clean_env(RANK=0, WORLD_SIZE=2, MASTER_ADDR="127.0.0.1", MASTER_PORT=free_port_pair()))],
                   timeout=30)
    assert outs[0][0] == 0, describe(outs)
    res = results_of(outs[0][1])[0]
    assert res["error"] == "InvalidArgument", res
    assert "MSCOMM_SECRET" in res["message"] and "torchrun" in res["message"], res


# -- mpirun ---------------------------------------------------------------------------------------

def find_mpiexec() -> str | None:
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else shutil.which("mpiexec")


@pytest.mark.timeout(120)
def test_init_mpirun_2ranks(tmp_path):
    pytest.importorskip("mpi4py")
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("mpiexec not found (pip install mpich)")
    script = write_script(tmp_path, ALLREDUCE_BODY)
    env = clean_env(OMPI_ALLOW_RUN_AS_ROOT=1, OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1, TEST_RESULT_DIR=tmp_path / "results")
    outs = run_all([([mpiexec, "-n", "2", sys.executable, script], env)], timeout=90)
    rc, so, se = outs[0]
    assert rc == 0, describe(outs)
    got = sorted(results_in(tmp_path / "results"), key=lambda g: g["rank"])
    assert [g["rank"] for g in got] == [0, 1], describe(outs)
    for g in got:
        assert g == {"rank": g["rank"], "size": 2, "sum": [3.0, 3.0], "same": True}


# -- Slurm (simulated environment) ----------------------------------------------------------------

def slurm_env(rank: int, ntasks: int, **extra: object) -> dict[str, str]:
    return clean_env(SLURM_PROCID=rank, SLURM_NTASKS=ntasks, SLURM_LOCALID=rank, SLURM_JOB_NODELIST="localhost",
                     SLURM_JOB_ID="4242", **extra)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ntasks", [2, 3], ids=lambda n: f"{n}ranks")
def test_init_slurm_master_port_and_secret(tmp_path, ntasks):
    script = write_script(tmp_path, ALLREDUCE_BODY)
    port, secret = free_port_pair(), secrets.token_hex(32)
    outs = run_all([([sys.executable, script],
                     slurm_env(r, ntasks, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, MSCOMM_SECRET=secret))
                    for r in range(ntasks)], timeout=40)
    assert_allreduce_ok(outs, ntasks)


@pytest.mark.timeout(60)
def test_init_slurm_bootstrap_port_on_first_node_of_nodelist(tmp_path):
    # No MASTER_ADDR/MASTER_PORT: rank 0 is on the first node of SLURM_JOB_NODELIST ("localhost").
    script = write_script(tmp_path, ALLREDUCE_BODY)
    port, secret = free_port_pair(), secrets.token_hex(32)
    outs = run_all([([sys.executable, script], slurm_env(r, 2, MSCOMM_BOOTSTRAP_PORT=port, MSCOMM_SECRET=secret.upper()))
                    for r in range(2)], timeout=40)
    assert_allreduce_ok(outs, 2)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("secret", [None, "", "abc", "zz" * 32, "0" * 63],
                         ids=["unset", "empty", "short", "not-hex", "63-digits"])
def test_init_slurm_without_valid_secret_names_mscomm_secret(tmp_path, secret):
    script = write_script(tmp_path, INIT_ERROR_BODY)
    extra = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": free_port_pair()}
    if secret is not None:
        extra["MSCOMM_SECRET"] = secret
    outs = run_all([([sys.executable, script], slurm_env(0, 2, **extra))], timeout=30)
    assert outs[0][0] == 0, describe(outs)
    res = results_of(outs[0][1])[0]
    assert res["error"] == "InvalidArgument", res
    assert "MSCOMM_SECRET" in res["message"] and "Slurm" in res["message"], res


# -- launcher detection order ---------------------------------------------------------------------

@pytest.mark.parametrize("env, expected", [
    ({}, ("none", 0, 1)),
    ({"MSCOMM_UNIQUE_ID": "mscomm://127.0.0.1:1/" + "0" * 64, "MSCOMM_RANK": "1", "MSCOMM_WORLD_SIZE": "2",
      "RANK": "0", "WORLD_SIZE": "4", "MASTER_ADDR": "h"}, ("mscomm-run", 1, 2)),
    ({"RANK": "3", "WORLD_SIZE": "4", "MASTER_ADDR": "h", "OMPI_COMM_WORLD_RANK": "0",
      "OMPI_COMM_WORLD_SIZE": "2"}, ("torchrun", 3, 4)),
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "2"},
     ("mpirun", 1, 2)),
    ({"PMI_RANK": "2", "PMI_SIZE": "3", "SLURM_PROCID": "0", "SLURM_NTASKS": "3"}, ("mpirun", 2, 3)),
    ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8"}, ("slurm", 5, 8)),
], ids=["none", "mscomm-run-over-torchrun", "torchrun-over-mpirun", "ompi-over-slurm", "pmi-over-slurm", "slurm"])
def test_init_detect_launcher_order(monkeypatch, env, expected):
    from mscomm.launch_env import detect

    for k in list(os.environ):
        if k in LAUNCHER_VARS or k.startswith(LAUNCHER_PREFIXES):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    info = detect()
    assert (info.launcher, info.rank, info.size) == expected


# -- expand_nodelist ------------------------------------------------------------------------------

@pytest.mark.parametrize("nodelist, hosts", [
    ("localhost", ["localhost"]),
    ("node[01-03,07],gpu5", ["node01", "node02", "node03", "node07", "gpu5"]),
    ("a,b,c", ["a", "b", "c"]),
    ("n[8-11]", ["n8", "n9", "n10", "n11"]),
    ("n[008-011]", ["n008", "n009", "n010", "n011"]),
    ("n[3]", ["n3"]),
    ("gpu5,node[1-2]", ["gpu5", "node1", "node2"]),
    ("node[1-2]-ib", ["node1-ib", "node2-ib"]),
    ("a[1-2],b[5,7]", ["a1", "a2", "b5", "b7"]),
    ("host-1.example.com", ["host-1.example.com"]),
    ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
], ids=["single", "ranges-and-plain", "plain-list", "width-grows", "zero-padded", "one-index", "plain-first",
        "suffix", "two-groups", "dotted-name", "two-bracket-sets"])
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts
