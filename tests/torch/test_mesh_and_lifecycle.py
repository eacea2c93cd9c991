"""DeviceMesh/DTensor over mscomm, abort unblocking a pending operation, and re-creating groups."""

from __future__ import annotations

from torch_common import run_torch_job


def test_device_mesh_and_dtensor():
    job = run_torch_job(2, '''
        init("mscomm")
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import distribute_tensor, Shard, Replicate
        mesh = init_device_mesh("cpu", (SIZE,))
        full = torch.arange(16.0).reshape(4, 4)
        d = distribute_tensor(full, mesh, [Shard(0)])
        back = d.redistribute(mesh, [Replicate()]).to_local()
        s = (d * 2).sum().full_tensor()
        emit([back.tolist() == full.tolist(), float(s), mesh.get_group().group_name != ""])
        dist.destroy_process_group()
    ''', timeout=120).check_ok()
    for r in range(2):
        assert job.results(r)[0] == [True, 240.0, True]


def test_abort_unblocks_pending_work():
    job = run_torch_job(2, '''
        import threading, time
        init("mscomm", timeout=60)
        pg = dist.group.WORLD
        if RANK == 0:
            w = dist.all_reduce(torch.ones(4), async_op=True)   # rank 1 never joins it
            threading.Timer(1.0, pg.abort).start()
            t0 = time.monotonic()
            try:
                w.wait()
                emit(["no error"])
            except Exception as e:
                emit([type(e).__name__, time.monotonic() - t0 < 10])
        else:
            time.sleep(3)
            emit(["idle"])
        dist.destroy_process_group()   # no segment may be left (conftest checks)
    ''', env={"MSCOMM_SHUTDOWN_TIMEOUT": "3"}, timeout=60)
    name, fast = job.results(0)[0]
    assert name == "Aborted" and fast
