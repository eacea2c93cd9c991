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


def test_a_rank_that_left_is_named():
    # Rank 1 shuts the group down and exits while rank 0 still runs collectives on it: rank 0's
    # error says that rank 1 left (not an internal step or a guess that it died).
    job = run_torch_job(2, '''
        import time
        init("mscomm", timeout=8)
        dist.all_reduce(torch.ones(4))
        if RANK == 1:
            dist.destroy_process_group()
            emit(["left"])
        else:
            time.sleep(1.0)
            t0 = time.monotonic()
            try:
                dist.all_reduce(torch.ones(1024))
                emit(["no error"])
            except Exception as e:
                emit([type(e).__name__, str(e), time.monotonic() - t0])
            dist.destroy_process_group()
    ''', env={"MSCOMM_SHUTDOWN_TIMEOUT": "2"}, timeout=90)
    name, message, _ = job.results(0)[0]
    assert name == "PeerFailure" and "rank 1 left the group" in message, message


def test_group_monitored_barrier():
    # group.monitored_barrier() on an mscomm group, 3 ranks: all arrive; then rank 2 stays away and
    # rank 0 names it (gloo's messages), first alone, then with wait_all_ranks.
    job = run_torch_job(3, '''
        init("mscomm", timeout=30)
        pg = dist.group.WORLD
        t = datetime.timedelta(seconds=2)
        pg.monitored_barrier(t)
        out = ["ok"]
        for wait_all in (False, True):
            if RANK != 2:
                try:
                    pg.monitored_barrier(t, wait_all_ranks=wait_all)
                    out.append("no error")
                except RuntimeError as e:
                    out.append(str(e))
            dist.barrier()
        emit(out)
        dist.destroy_process_group()
    ''', timeout=120).check_ok()
    r0 = job.results(0)[0]
    assert r0[0] == "ok"
    assert "Rank 2 failed to pass monitoredBarrier in 2000 ms" in r0[1], r0
    assert "Ranks 2 failed to pass monitoredBarrier" in r0[2], r0
    assert "successfully reached monitoredBarrier" in job.results(1)[0][1], job.results(1)
