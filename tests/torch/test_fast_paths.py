"""Plain synchronous dist.all_reduce and dist.all_to_all_single skip the process group's general
path and go straight to the core (process_group.py, "fast paths"); these are their edges."""

from __future__ import annotations

from torch_common import run_torch_job


def test_plain_calls_views_non_contiguous_and_futures():
    job = run_torch_job(3, '''
        init("mscomm")
        out = {}
        base = torch.arange(10.0) + RANK
        dist.all_reduce(base[3:7])                      # a view starting inside its storage
        out["view"] = base.tolist()
        nc = (torch.arange(8.0).reshape(4, 2) + RANK).t()
        dist.all_reduce(nc, op=dist.ReduceOp.MAX)       # not contiguous: the general path
        out["non_contiguous"] = nc.tolist()
        pg = dist.group.WORLD
        opts = dist.AllreduceOptions()
        opts.asyncOp = False
        t = torch.full((5,), float(RANK))
        work = pg.allreduce([t], opts)                  # what dist.all_reduce does
        work.wait()
        out["future"] = work.get_future().value()[0].tolist()
        x = torch.arange(2 * SIZE, dtype=torch.int16) + 100 * RANK   # no core dtype: moved as bytes
        y = torch.empty_like(x)
        dist.all_to_all_single(y, x)
        out["int16"] = y.tolist()
        rows = [RANK + p + 1 for p in range(SIZE)]      # rank q sends q + p + 1 rows to rank p
        x = torch.arange(sum(rows) * 2, dtype=torch.float64).reshape(-1, 2) + 1000 * RANK
        got = torch.empty(sum(q + RANK + 1 for q in range(SIZE)), 2, dtype=torch.float64)
        dist.all_to_all_single(got, x, [q + RANK + 1 for q in range(SIZE)], rows)
        out["uneven"] = got.tolist()
        emit(out)
        dist.destroy_process_group()
    ''', timeout=120).check_ok()
    n = 3
    for r in range(n):
        res = job.results(r)[0]
        base = [float(i) for i in range(10)]
        want_view = [v * n + 3 if 3 <= i < 7 else v + r for i, v in enumerate(base)]
        assert res["view"] == want_view
        assert res["non_contiguous"] == [[0.0 + n - 1 + 2 * i for i in range(4)], [1.0 + n - 1 + 2 * i for i in range(4)]]
        assert res["future"] == [float(sum(range(n)))] * 5
        assert res["int16"] == [2 * r + k + 100 * q for q in range(n) for k in range(2)]
        want = []
        for q in range(n):
            sent = [q + p + 1 for p in range(n)]
            start = sum(sent[:r])
            flat = [float(v + 1000 * q) for v in range(sum(sent) * 2)]
            want += [flat[2 * i:2 * i + 2] for i in range(start, start + sent[r])]
        assert res["uneven"] == want


def test_bad_split_sizes_fail_clearly_and_the_group_still_works():
    job = run_torch_job(2, '''
        init("mscomm")
        x, y = torch.ones(6), torch.empty(6)
        try:
            dist.all_to_all_single(y, x, [1, 4], [3, 3])     # output splits sum to 5, not 6
            emit(["no error"])
        except ValueError as e:
            emit([type(e).__name__, str(e)])
        t = torch.ones(4)
        dist.all_reduce(t)
        emit(t.tolist())
        dist.destroy_process_group()
    ''', timeout=60).check_ok()
    for r in range(2):
        name, message = job.results(r)[0]
        assert name == "InvalidArgument" and "output_split_sizes [1, 4]" in message, message
        assert job.results(r)[1] == [2.0] * 4


def test_register_tensor_maps_it_and_refuses_other_groups():
    job = run_torch_job(2, '''
        import mscomm.torch
        init("mscomm")
        t = torch.full((1 << 18,), float(RANK + 1))
        h = mscomm.torch.register_tensor(t)
        def where(a):
            p = a.data_ptr()
            for line in open("/proc/self/maps"):
                lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
                if lo <= p < hi:
                    return "shm" if "/dev/shm/mscomm" in line else "private"
        mapped = where(t)
        dist.all_reduce(t)
        ok = bool((t == 3.0).all())
        h.deregister()
        gloo = dist.new_group(backend="gloo")
        try:
            mscomm.torch.register_tensor(torch.ones(4), gloo)
            refusal = None
        except ValueError as e:
            refusal = str(e)
        emit([mapped, ok, where(t), refusal])
        dist.destroy_process_group()
    ''', timeout=90).check_ok()
    for r in range(2):
        mapped, ok, after, refusal = job.results(r)[0]
        assert (mapped, ok, after) == ("shm", True, "private")
        assert "is not an mscomm process group" in refusal
