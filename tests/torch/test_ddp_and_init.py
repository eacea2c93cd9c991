"""DDP under mscomm gives gloo's parameters; every init method; torchrun; a dead or missing rank
raises instead of hanging."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from torch_common import run_torch_job

DDP_CODE = '''
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.distributed.algorithms.join import Join
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

def train(group, **ddp_kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    ddp = DDP(model, process_group=group, **ddp_kw.pop("ddp", {}))
    hook = ddp_kw.pop("hook", None)
    if hook is not None:
        ddp.register_comm_hook(group, hook)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(100 + RANK)
    steps = 3 + RANK if ddp_kw.pop("uneven", False) else 4
    with Join([ddp]):
        for _ in range(steps):
            x, y = torch.randn(5, 8, generator=g), torch.randn(5, 4, generator=g)
            opt.zero_grad()
            nn.functional.mse_loss(ddp(x), y).backward()
            opt.step()
    return [p.detach().clone() for p in ddp.parameters()]

init("gloo")
ms = dist.new_group(backend="mscomm")
gl = dist.new_group(backend="gloo")
variants = {
    "default": {},
    "bucket_view": {"ddp": {"gradient_as_bucket_view": True}},
    "static_graph": {"ddp": {"static_graph": True}},
    "allreduce_hook": {"hook": default_hooks.allreduce_hook},
    "join_uneven": {"uneven": True},
    "join_unused": {"uneven": True, "ddp": {"find_unused_parameters": True}},
}
out = {}
for name, kw in variants.items():
    a = train(ms, **{k: (dict(v) if isinstance(v, dict) else v) for k, v in kw.items()})
    b = train(gl, **{k: (dict(v) if isinstance(v, dict) else v) for k, v in kw.items()})
    out[name] = max(float((x - y).abs().max()) for x, y in zip(a, b))
dist.destroy_process_group()
emit(out)
'''


@pytest.mark.parametrize("nranks", [2, 3], ids=lambda n: f"{n}ranks")
def test_ddp_training_matches_gloo(nranks):
    job = run_torch_job(nranks, DDP_CODE, timeout=240).check_ok()
    for r in range(nranks):
        (diffs,) = job.results(r)
        assert all(d < 1e-5 for d in diffs.values()), diffs


@pytest.mark.parametrize("method", ["env", "tcp", "store", "filestore"])
def test_init_methods(method, tmp_path):
    job = run_torch_job(3, f'''
        method = {method!r}
        kw = dict(rank=RANK, world_size=SIZE, timeout=datetime.timedelta(seconds=60))
        if method == "env":
            os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(PORT))
            dist.init_process_group("mscomm", init_method="env://", **kw)
        elif method == "tcp":
            dist.init_process_group("mscomm", init_method=f"tcp://127.0.0.1:{{PORT}}", **kw)
        elif method == "store":
            store = dist.TCPStore("127.0.0.1", PORT, SIZE, RANK == 0)
            dist.init_process_group("mscomm", store=store, **kw)
        else:
            dist.init_process_group("mscomm", init_method="file://{tmp_path}/rdzv", **kw)
        x = torch.full((4,), float(RANK))
        dist.all_reduce(x)
        emit([dist.get_backend(), x.tolist(), dist.group.WORLD.group_name])
        dist.destroy_process_group()
    ''', timeout=90).check_ok()
    for r in range(3):
        assert job.results(r)[0][:2] == ["mscomm", [3.0] * 4]


def test_torchrun_script_passes(tmp_path):
    """``torchrun --standalone --nproc-per-node=4`` runs a script that uses only the torch API."""
    script = tmp_path / "train.py"
    script.write_text('''
import torch, torch.distributed as dist
import mscomm.torch
dist.init_process_group("mscomm")
r, n = dist.get_rank(), dist.get_world_size()
x = torch.full((1000,), float(r))
dist.all_reduce(x)
assert x.eq(n * (n - 1) / 2).all(), x[:4]
out = [torch.empty(3) for _ in range(n)]
dist.all_gather(out, torch.full((3,), float(r)))
assert [t[0].item() for t in out] == list(range(n))
dist.barrier()
dist.destroy_process_group()
print("torchrun-ok", r)
''')
    # The script must find the same mscomm as this test (installed, or PYTHONPATH in a dev tree).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4",
                           str(script)], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("torchrun-ok") == 4


def test_dead_rank_raises_on_the_others():
    job = run_torch_job(3, '''
        import time
        init("mscomm", timeout=20)
        x = torch.ones(1000)
        dist.all_reduce(x)
        if RANK == 2:
            os._exit(17)                     # dies without a word
        t0 = time.monotonic()
        try:
            for _ in range(1000):
                dist.all_reduce(x)
            emit(["no error", time.monotonic() - t0])
        except Exception as e:
            emit([type(e).__name__, time.monotonic() - t0])
        os._exit(0)
    ''', timeout=90)
    assert job[2].returncode == 17
    for r in (0, 1):
        name, seconds = job.results(r)[0]
        assert name != "no error" and seconds < 20, (name, seconds)


def test_rank_that_never_joins_raises_within_group_timeout():
    job = run_torch_job(3, '''
        import time
        init("gloo", timeout=60)
        t0 = time.monotonic()
        try:
            if RANK != 2:
                dist.new_group(backend="mscomm", timeout=datetime.timedelta(seconds=5))
            else:
                time.sleep(12)
            emit(["joined", time.monotonic() - t0])
        except Exception as e:
            emit([type(e).__name__, time.monotonic() - t0, str(e)[:300]])
        os._exit(0)
    ''', timeout=90)
    for r in (0, 1):
        name, seconds, message = job.results(r)[0]
        assert name == "Timeout" and seconds < 30 and "2 of 3 ranks" in message, (name, seconds, message)
