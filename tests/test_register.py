"""Registered buffers (comm.register): the pages move into shared memory in place, collectives on
them take the direct path (no staging copy) and agree with numpy references; bad uses fail clearly.

MSCOMM_DIRECT_MIN_BYTES=0 sends even 1-element calls down the direct path, so odd sizes and
offsets inside a registration are covered.
"""

from __future__ import annotations

import pytest

from harness import run_job, transports_env

# Whether `x`'s first page is mapped from a shared-memory segment (after register) or is
# private memory again (after deregister).
MAPS_HELPER = r'''
def mapping_of(a):
    addr = a.ctypes.data if hasattr(a, "ctypes") else a.data_ptr()
    for line in open("/proc/self/maps"):
        lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
        if lo <= addr < hi:
            return "shm" if "/dev/shm/mscomm" in line else "private"
    return "unmapped"
'''

DIRECT_BODY = MAPS_HELPER + r'''
import itertools, ml_dtypes
comm = mscomm.init(timeout=60)
N, me = comm.size, comm.rank
fail = []

def dt(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)

def data(rank, count, d, salt=0):
    return ((np.arange(count) * 7 + rank * 3 + salt) % 11).astype(d)

def same(case, got, want):
    if not np.array_equal(got.astype(np.float64), want.astype(np.float64)):
        fail.append(f"{case}: got {got[:4]}, want {want[:4]}")

# One registration per rank holds every buffer below, at unaligned offsets inside it.
REGISTER = os.environ["TEST_REGISTER"] == "1"
arena = np.zeros(1 << 22, np.uint8)
addr = arena.ctypes.data
arena[:] = np.arange(arena.size) % 251
if REGISTER:
    reg = comm.register(arena)
    assert arena.ctypes.data == addr, "register moved the array"
    assert np.array_equal(arena, np.arange(arena.size) % 251), "register changed the contents"
    assert mapping_of(arena) == "shm", mapping_of(arena)
single_copy = mscomm._core.single_copy_reads(comm._core)

def view(offset, count, d):
    return arena[offset: offset + count * d.itemsize].view(d)

for name, count in itertools.product(["float32", "bfloat16", "float64", "int32", "uint8"], [1, 7, 5003, 40001]):
    d = dt(name)
    case = lambda what: f"{what}/{name}/{count}"
    everyone = [data(r, count, d) for r in range(N)]
    x = view(8, count, d)
    out = view(8 + count * d.itemsize + 24, count, d)
    for op in ["sum", "max", "min", "avg"]:
        x[:] = data(me, count, d)
        mscomm.allreduce(x, op, out=out)
        st = np.stack(everyone).astype(np.float64)
        want = {"sum": st.sum(0), "max": st.max(0), "min": st.min(0), "avg": st.mean(0)}[op]
        if op == "avg" and d.kind in "iu":
            want = np.trunc(st.sum(0) / N)
        if op == "avg" and d.kind == "f":
            same(case(f"allreduce/{op}"), out.astype(np.float64).round(2), want.astype(d).astype(np.float64).round(2))
        else:
            same(case(f"allreduce/{op}"), out, want.astype(d))
        x[:] = data(me, count, d)
        mscomm.allreduce(x, op)          # in place
        same(case(f"allreduce/{op}/inplace"), x, out)
    # allgather, out of place and in place
    big = view(64, N * count, d)
    x = view(64 + N * count * d.itemsize + 8, count, d)
    x[:] = data(me, count, d)
    mscomm.allgather(x, out=big)
    same(case("allgather"), big, np.concatenate(everyone))
    big[:] = 0
    big[me * count:(me + 1) * count] = data(me, count, d)
    mscomm.allgather(big[me * count:(me + 1) * count], out=big)
    same(case("allgather/inplace"), big, np.concatenate(everyone))
    # alltoall: block p of rank r is data(r * N + p)
    src = view(16, N * count, d)
    dst = view(16 + N * count * d.itemsize + 40, N * count, d)
    src[:] = np.concatenate([data(me * N + p, count, d) for p in range(N)])
    mscomm.alltoall(src, out=dst)
    same(case("alltoall"), dst, np.concatenate([data(p * N + me, count, d) for p in range(N)]))
    # reduce_scatter, out of place and in place (out is the input's own block)
    src[:] = np.concatenate([data(me * N + p, count, d) for p in range(N)])
    rs = view(16 + N * count * d.itemsize + 40, count, d)
    mscomm.reduce_scatter(src, out=rs)
    want = sum(data(r * N + me, count, d).astype(np.float64) for r in range(N)).astype(d)
    same(case("reduce_scatter"), rs, want)
    mscomm.reduce_scatter(src, out=src[me * count:(me + 1) * count])
    same(case("reduce_scatter/inplace"), src[me * count:(me + 1) * count], want)
    # broadcast from every root
    for root in range(N):
        b = view(200, count, d)
        b[:] = data(me, count, d, salt=1)
        mscomm.broadcast(b, root)
        same(case(f"broadcast/root{root}"), b, data(root, count, d, salt=1))

# Unregistered buffers still work next to registered ones (the staged path).
y = np.full(1000, me + 1, np.float32)
mscomm.allreduce(y)
same("unregistered", y, np.full(1000, N * (N + 1) / 2, np.float32))

if REGISTER:
    keep = arena.copy()
    reg.deregister()
    assert not reg.registered
    assert mapping_of(arena) == "private", mapping_of(arena)
    assert np.array_equal(arena, keep), "deregister changed the contents"
    arena[:] = 1  # still ordinary writable memory
emit({"fail": fail[:20], "single_copy": single_copy})
comm.close()
'''


@pytest.mark.timeout(300)
@pytest.mark.parametrize("nranks", [2, 3, 4])
def test_registered_collectives_take_direct_path_and_match_numpy(nranks):
    """Registered buffers only (single-copy reads off): peers use each other's mappings."""
    env = {"MSCOMM_DIRECT_MIN_BYTES": "0", "MSCOMM_CMA": "0", "TEST_REGISTER": "1"}
    job = run_job(nranks, DIRECT_BODY, env=env, timeout=240).check_ok()
    for r in range(nranks):
        assert job.results(r)[0] == {"fail": [], "single_copy": False}, job.results(r)[0]


def _cma_works() -> bool:
    """Whether this machine lets a process read a sibling's memory (what the direct path probes)."""
    import ctypes
    import multiprocessing as mp
    import os

    value = ctypes.c_uint64(0x1234567890ABCDEF)
    libc = ctypes.CDLL(None, use_errno=True)

    class IoVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    def child(pid: int, address: int, q) -> None:
        got = ctypes.c_uint64(0)
        local, remote = IoVec(ctypes.addressof(got), 8), IoVec(address, 8)
        n = libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        q.put(n == 8 and got.value == 0x1234567890ABCDEF)

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(os.getpid(), ctypes.addressof(value), q))
    p.start()
    p.join(30)
    return not p.is_alive() and q.get(timeout=5)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("register", [False, True], ids=["unregistered", "registered"])
@pytest.mark.parametrize("nranks", [2, 3, 4])
def test_single_copy_reads_match_numpy(nranks, register):
    """Single-copy reads on (the default): unregistered buffers take the direct path through
    process_vm_readv where the kernel allows it, registered ones through their mappings."""
    env = {"MSCOMM_DIRECT_MIN_BYTES": "0", "TEST_REGISTER": "1" if register else "0"}
    job = run_job(nranks, DIRECT_BODY, env=env, timeout=240).check_ok()
    expect = _cma_works()
    for r in range(nranks):
        assert job.results(r)[0] == {"fail": [], "single_copy": expect}, job.results(r)[0]


FALLBACK_BODY = r'''
if os.environ.get("TEST_RANKS_PER_HOST"):
    os.environ["MSCOMM_HOST_ID"] = f"host{RANK // int(os.environ['TEST_RANKS_PER_HOST'])}"
comm = mscomm.init(timeout=60)
N, me = comm.size, comm.rank
x = np.full(300001, me + 1, np.float32)
out = np.zeros(N * x.size, np.float32)
with comm.register(x), comm.register(out):
    comm.allreduce(x)
    comm.allgather(x[:1000], out=out[:N * 1000])
    ok = bool((x == N * (N + 1) / 2).all()) and bool((out[:N * 1000] == N * (N + 1) / 2).all())
emit({"ok": ok})
comm.close()
'''


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", ["tcp", "2perhost"])
def test_register_across_hosts_falls_back_to_the_usual_algorithms(transport):
    job = run_job(4, FALLBACK_BODY, env=transports_env(transport), timeout=90).check_ok()
    assert all(job.results(r)[0]["ok"] for r in range(4))


@pytest.mark.timeout(120)
def test_torch_tensor_registers_and_reduces_in_place():
    pytest.importorskip("torch")
    job = run_job(2, MAPS_HELPER + r'''
import torch
comm = mscomm.init(timeout=60)
t = torch.full((1 << 18,), float(comm.rank + 1))
reg = comm.register(t)
where = mapping_of(t)
comm.allreduce(t)
ok = bool((t == 3.0).all())
reg.deregister()
emit({"ok": ok, "where": where, "after": mapping_of(t)})
comm.close()
''', timeout=90).check_ok()
    for r in range(2):
        assert job.results(r)[0] == {"ok": True, "where": "shm", "after": "private"}


@pytest.mark.timeout(120)
def test_registered_on_one_rank_only_fails_every_rank_clearly():
    job = run_job(2, r'''
comm = mscomm.init(timeout=30)
x = np.ones(1 << 18, np.float32)
if comm.rank == 0:
    comm.register(x)
else:
    comm.register(np.ones(16, np.float32))   # registers something else: x is not registered
try:
    comm.allreduce(x)
    emit({"error": None})
except mscomm.MscommError as e:
    emit({"error": type(e).__name__, "message": str(e)})
''', env={"MSCOMM_CMA": "0"}, timeout=90).check_ok()  # with single-copy reads the choices may coincide
    for r in range(2):
        res = job.results(r)[0]
        assert res["error"] == "InvalidArgument", res
        assert "differ" in res["message"] and "registered" in res["message"], res


@pytest.mark.timeout(120)
def test_register_bad_input_is_refused_clearly():
    job = run_job(1, r'''
comm = mscomm.init(timeout=30)
errors = {}
def attempt(name, fn):
    try:
        fn()
        errors[name] = None
    except mscomm.MscommError as e:
        errors[name] = [type(e).__name__, str(e)]
attempt("empty", lambda: comm.register(np.zeros(0, np.float32)))
ro = np.ones(100, np.float32); ro.flags.writeable = False
attempt("readonly", lambda: comm.register(ro))
attempt("strided", lambda: comm.register(np.ones(100, np.float32)[::2]))
big = np.ones(1 << 16, np.float32)
reg = comm.register(big)
attempt("same pages", lambda: comm.register(big[10:20]))
reg.deregister()
reg.deregister()   # a second deregister does nothing
attempt("after deregister", lambda: comm.register(big[10:20]).deregister())
emit(errors)
comm.close()
''', timeout=60).check_ok()
    e = job.results(0)[0]
    assert e["empty"][0] == "InvalidArgument" and "empty" in e["empty"][1]
    assert e["readonly"][0] == "InvalidArgument"
    assert e["strided"][0] == "InvalidArgument"
    assert e["same pages"][0] == "InvalidArgument" and "shares memory pages" in e["same pages"][1]
    assert e["after deregister"] is None
