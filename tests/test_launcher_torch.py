"""mscomm-run as a launcher for torch scripts: the standard RANK/WORLD_SIZE/LOCAL_RANK/
LOCAL_WORLD_SIZE/MASTER_ADDR/MASTER_PORT variables are set, so ``dist.init_process_group`` works
for "mscomm" and "gloo"; a script path given as the command runs with the current interpreter.

Each launch is a real ``python -m mscomm.launcher`` process in its own session, bounded by a
timeout and killed as a whole when it overruns.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from mscomm.launcher import resolve_command

LAUNCHER = [sys.executable, "-m", "mscomm.launcher"]
STANDARD = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launch(args: list[str], cwd: str, timeout: float = 90) -> tuple[int | None, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSCOMM_", "TORCHELASTIC_")) and k not in STANDARD}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    p = subprocess.Popen([*LAUNCHER, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out
    return p.returncode, out


TORCH_SCRIPT = '''
import os, sys
import torch, torch.distributed as dist
import mscomm.torch  # registers the "mscomm" backend
backend = sys.argv[1]
dist.init_process_group(backend)
t = torch.full((100,), float(dist.get_rank() + 1))
dist.all_reduce(t)
print("env", *[os.environ[k] for k in %r], flush=True)
print("result", backend, dist.get_rank(), dist.get_world_size(), t[0].item(), flush=True)
dist.destroy_process_group()
''' % (STANDARD,)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["mscomm", "gloo"])
def test_mscomm_run_script_path_runs_torch_init_process_group(tmp_path, backend):
    pytest.importorskip("torch")
    (tmp_path / "train.py").write_text(textwrap.dedent(TORCH_SCRIPT))
    rc, out = launch(["-n", "2", "train.py", backend], cwd=str(tmp_path))
    assert rc == 0, out
    results = sorted(ln for ln in out.splitlines() if "result" in ln)
    assert results == [f"[0] result {backend} 0 2 3.0", f"[1] result {backend} 1 2 3.0"], out
    envs = sorted(ln.split()[2:] for ln in out.splitlines() if " env " in ln)
    assert [e[:4] for e in envs] == [["0", "2", "0", "2"], ["1", "2", "1", "2"]], out
    assert {e[4] for e in envs} == {"127.0.0.1"} and len({e[5] for e in envs}) == 1, out


@pytest.mark.timeout(60)
def test_mscomm_run_sets_standard_variables_for_a_plain_command(tmp_path):
    code = "import os; print('std', *[os.environ.get(k, '-') for k in %r], flush=True)" % (STANDARD,)
    rc, out = launch(["-n", "3", "--", sys.executable, "-c", code], cwd=str(tmp_path), timeout=40)
    assert rc == 0, out
    rows = sorted(ln.split()[2:] for ln in out.splitlines() if " std " in ln)
    assert [r[:4] for r in rows] == [[str(r), "3", str(r), "3"] for r in range(3)], out
    ports = {r[5] for r in rows}
    assert len(ports) == 1 and 0 < int(ports.pop()) < 65536, out


def test_resolve_command_script_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "tool").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "tool").chmod(stat.S_IRWXU)
    (tmp_path / "data.txt").write_text("not executable\n")
    assert resolve_command(["train.py", "--lr", "1"]) == [sys.executable, "train.py", "--lr", "1"]
    assert resolve_command([str(tmp_path / "train.py")]) == [sys.executable, str(tmp_path / "train.py")]
    assert resolve_command(["tool", "x"]) == [os.path.join(".", "tool"), "x"]
    assert resolve_command(["data.txt"]) == [sys.executable, "data.txt"]
    assert resolve_command(["python", "train.py"]) == ["python", "train.py"]
    assert resolve_command(["no-such-program"]) == ["no-such-program"]


@pytest.mark.timeout(60)
def test_mscomm_run_executable_in_current_folder_runs_without_dot_slash(tmp_path):
    (tmp_path / "job.sh").write_text("#!/bin/sh\necho \"rank $RANK of $WORLD_SIZE\"\n")
    (tmp_path / "job.sh").chmod(stat.S_IRWXU)
    rc, out = launch(["-n", "2", "job.sh"], cwd=str(tmp_path), timeout=40)
    assert rc == 0, out
    assert sorted(ln for ln in out.splitlines() if "rank" in ln) == ["[0] rank 0 of 2", "[1] rank 1 of 2"], out
