"""Every collective against a numpy reference on real processes: transports (shared memory, TCP)
x world sizes x dtypes x sizes (0, 1, odd, several chunks), with small scratch slots so the
multi-block and multi-chunk paths run. Ids read like ``collectives/tcp/3ranks``; failing cases
are reported as ``allgather/float16/5003``."""

from __future__ import annotations

import pytest

from harness import run_job, transports_env

BODY = r'''
import itertools, ml_dtypes
DTYPES = ["float16", "bfloat16", "float32", "float64", "int8", "int32", "int64", "uint8"]
COUNTS = [0, 1, 7, 5003]
if os.environ.get("TEST_RANKS_PER_HOST"):  # emulate several hosts: shm within, TCP between
    os.environ["MSCOMM_HOST_ID"] = f"host{RANK // int(os.environ['TEST_RANKS_PER_HOST'])}"
comm = mscomm.init()
N, me = comm.size, comm.rank
fail = []

def dt(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)

def data(rank, count, dtype, salt=0):
    # small integers: every sum over <= 8 ranks is exact in every dtype
    return ((np.arange(count) * 7 + rank * 3 + salt) % 11).astype(dtype)

def same(case, got, want):
    if got.shape != want.shape or not np.array_equal(got.astype(np.float64), want.astype(np.float64)):
        bad = np.flatnonzero(got.astype(np.float64).ravel() != want.astype(np.float64).ravel())[:3] if got.shape == want.shape else "shape"
        fail.append(f"{case}: mismatch at {bad}")

for name, count in itertools.product(DTYPES, COUNTS):
    d = dt(name)
    case = lambda what: f"{what}/{name}/{count}"
    mine = data(me, count, d)
    everyone = [data(r, count, d) for r in range(N)]
    # allgather (and in place: x is out's own block)
    out = np.full(N * count, 3, d)
    mscomm.allgather(mine, out=out)
    same(case("allgather"), out, np.concatenate(everyone))
    out2 = np.concatenate(everyone); out2[me * count:(me + 1) * count] = 0
    out2[me * count:(me + 1) * count] = mine
    mscomm.allgather(out2[me * count:(me + 1) * count], out=out2)
    same(case("allgather/inplace"), out2, np.concatenate(everyone))
    # broadcast from every root
    for root in range(N):
        b = data(me, count, d, salt=1) if me == root else np.zeros(count, d)
        mscomm.broadcast(b, root)
        same(case(f"broadcast/root{root}"), b, data(root, count, d, salt=1))
    # reduce to the last rank, every op; non-roots keep their input
    for op in ["sum", "max", "min", "prod", "avg"]:
        root = N - 1
        x = (data(me, count, d) % 2 + 1).astype(d) if op == "prod" else data(me, count, d)
        xs = [(data(r, count, d) % 2 + 1).astype(d) if op == "prod" else data(r, count, d) for r in range(N)]
        keep = x.copy()
        mscomm.reduce(x, root, op)
        if me == root:
            st = np.stack(xs).astype(np.int64 if d.kind in "iu" else np.float64)
            want = {"sum": st.sum(0), "max": st.max(0), "min": st.min(0), "prod": st.prod(0)}.get(op)
            if op == "avg":
                want = st.sum(0) / N if d.kind not in "iu" else np.trunc(st.sum(0) / N)
            if d.kind not in "iu" and op == "avg":
                ok = np.allclose(x.astype(np.float64), want, rtol=1e-2, atol=1e-2)
                if not ok: fail.append(case(f"reduce/{op}") + " avg mismatch")
            else:
                same(case(f"reduce/{op}"), x, want.astype(d))
        else:
            same(case(f"reduce/{op}/nonroot-untouched"), x, keep)
    # reduce_scatter
    full = [data(r, N * count, d, salt=2) for r in range(N)]
    rs = np.zeros(count, d)
    mscomm.reduce_scatter(full[me], "sum", out=rs)
    want = np.sum(np.stack(full).astype(np.int64 if d.kind in "iu" else np.float64), 0)[me * count:(me + 1) * count]
    same(case("reduce_scatter"), rs, want.astype(d))
    inplace = full[me].copy()  # out is the input's own block
    mscomm.reduce_scatter(inplace, "sum", out=inplace[me * count:(me + 1) * count])
    same(case("reduce_scatter/inplace"), inplace[me * count:(me + 1) * count], want.astype(d))
    # alltoall
    send = np.concatenate([data(me * N + p, count, d) for p in range(N)]) if count else np.zeros(0, d)
    recv = np.zeros(N * count, d)
    mscomm.alltoall(send, out=recv)
    want = np.concatenate([data(q * N + me, count, d) for q in range(N)]) if count else np.zeros(0, d)
    same(case("alltoall"), recv, want)
    # alltoallv with uneven counts (rank p sends (p + q + count) % 5 elements to q)
    sc = [(me + q + count) % 5 for q in range(N)]
    rc = [(p + me + count) % 5 for p in range(N)]
    sendv = np.concatenate([data(me * 31 + q, sc[q], d) for q in range(N)])
    recvv = np.full(sum(rc), 9, d)
    mscomm.alltoallv(sendv, sc, rc if count % 2 else None, out=recvv)
    same(case("alltoallv"), recvv, np.concatenate([data(p * 31 + me, rc[p], d) for p in range(N)]))
    # gather / scatter to root 0
    g = np.zeros(N * count, d) if me == 0 else None
    mscomm.gather(mine, 0, out=g)
    if me == 0:
        same(case("gather"), g, np.concatenate(everyone))
    s = np.zeros(count, d)
    mscomm.scatter(np.concatenate(everyone) if me == 0 else None, 0, out=s)
    same(case("scatter"), s, mine)
    # send/recv around the ring with tags
    if N > 1:
        nxt, prv = (me + 1) % N, (me - 1) % N
        r = np.zeros(count, d)
        if me % 2 == 0:
            mscomm.send(mine, nxt, tag=5); mscomm.recv(r, prv, tag=5)
        else:
            mscomm.recv(r, prv, tag=5); mscomm.send(mine, nxt, tag=5)
        same(case("sendrecv"), r, everyone[prv])
        # every rank sends first: a send of at most two chunks does not wait for the receiver
        if mine.nbytes <= 2 * int(os.environ["MSCOMM_TCP_SLOT_BYTES"]):
            r2 = np.zeros(count, d)
            mscomm.send(mine, nxt, tag=6)
            mscomm.recv(r2, prv, tag=6)
            same(case("sendrecv/send-first"), r2, everyone[prv])
    mscomm.barrier()

# async_op: results in issue order
w1 = mscomm.allreduce(np.ones(1000, np.float32), async_op=True)
w2 = mscomm.allgather(np.full(3, me, np.int32), out=np.zeros(N * 3, np.int32), async_op=True)
same("async/allreduce", w1.wait(), np.full(1000, N, np.float32))
same("async/allgather", w2.wait(), np.repeat(np.arange(N, dtype=np.int32), 3))
# split into even and odd ranks
sub = comm.split(me % 2, key=-me)
members = [r for r in range(N) if r % 2 == me % 2]
same("split/allreduce", sub.allreduce(np.array([me], np.int64)), np.array([sum(members)]))
if sub.rank != sorted(members, reverse=True).index(me):
    fail.append(f"split: rank {sub.rank} for world rank {me}")
sub.close()
emit({"failures": fail[:25], "nfail": len(fail)})
mscomm.finalize()
'''

SLOTS = {"MSCOMM_SHM_SLOT_BYTES": 8192, "MSCOMM_TCP_SLOT_BYTES": 4096, "MSCOMM_TIMEOUT": 60}
CASES = [("shm", n) for n in (1, 2, 3, 4, 7, 8)] + [("tcp", n) for n in (2, 3, 5, 8)] + [("2perhost", 4), ("2perhost", 5)]


@pytest.mark.parametrize("transport,nranks", CASES, ids=[f"collectives/{t}/{n}ranks" for t, n in CASES])
@pytest.mark.timeout(300)
def test_every_collective(transport, nranks):
    job = run_job(nranks, BODY, env={**SLOTS, **transports_env(transport)}, timeout=280).check_ok()
    failures = [f for r in range(nranks) for f in job.results(r)[0]["failures"]]
    assert not failures, "\n".join(failures)


INTERLEAVED = r'''
comm = mscomm.init()
for i in range(150):
    n = np.array([RANK + i], np.int64)
    g = comm.allgather(n, out=np.zeros(SIZE, np.int64))
    comm.gather(n, 0, out=np.zeros(SIZE, np.int64) if RANK == 0 else None)
    b = comm.broadcast(np.array([i if RANK == 0 else -1], np.int64), 0)
    s = comm.scatter(np.arange(SIZE, dtype=np.int64) + i if RANK == 0 else None, 0, out=np.zeros(1, np.int64))
    a = comm.allreduce(np.ones(3))
    assert g.tolist() == [r + i for r in range(SIZE)] and b[0] == i and s[0] == RANK + i and a[0] == SIZE
emit("ok")
mscomm.finalize()
'''


@pytest.mark.parametrize("transport,nranks", [("shm", 3), ("shm", 4), ("2perhost", 4)],
                         ids=["interleaved/shm/3ranks", "interleaved/shm/4ranks", "interleaved/2perhost/4ranks"])
def test_rooted_collectives_between_synchronizing_ones(transport, nranks):
    # gather and scatter do not synchronize every pair; the collectives around them must still
    # never read a descriptor or slot a faster rank has already rewritten.
    job = run_job(nranks, INTERLEAVED, env=transports_env(transport), timeout=120).check_ok()
    assert all(job.results(r) == ["ok"] for r in range(nranks))


CHECK_ARGS = r'''
comm = mscomm.init()
comm.allreduce(np.ones(4))                      # agreeing call: passes the check
x = np.ones(4, np.float32 if RANK != 2 else np.float64)
try:
    comm.gather(x, 0, out=np.zeros(4 * SIZE, x.dtype) if RANK == 0 else None)
    emit("no error")
except mscomm.InvalidArgument as e:
    emit(["MSCOMM_CHECK_ARGS" in str(e), "float64" in str(e) and "float32" in str(e)])
'''


@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_check_args_mode_raises_on_every_rank(transport):
    # Rank 2 disagrees in a rooted collective where only the root would see it otherwise.
    job = run_job(3, CHECK_ARGS, env={"MSCOMM_CHECK_ARGS": "1", "MSCOMM_SHUTDOWN_TIMEOUT": "3",
                                      **transports_env(transport)}, timeout=60)
    for r in range(3):
        assert job.results(r) == [[True, True]], job[r].describe()
