"""The tuning table's overrides: every algorithm of every collective, forced by argument or by
MSCOMM_<NAME>_ALGO, gives the numpy reference; names that cannot run here fail clearly."""

from __future__ import annotations

import pytest

import mscomm

from harness import run_job, transports_env

FORCED = r'''
if os.environ.get("TEST_RANKS_PER_HOST"):  # emulate several hosts: shm within, TCP between
    os.environ["MSCOMM_HOST_ID"] = f"host{RANK // int(os.environ['TEST_RANKS_PER_HOST'])}"
comm = mscomm.init(timeout=60)
N, me = comm.size, comm.rank
fail, ran, refused = [], [], []
def check(case, got, want):
    if not np.array_equal(got, want):
        fail.append(f"{case}: got {got[:4]} want {want[:4]}")

def forced(coll, x, run, out=None):
    # Every row of coll's table: rows that can run this call must give the reference; rows that
    # cannot must be refused with their reason (and every rank refuses alike).
    for a in ["auto"] + mscomm.algorithms(coll, x, out=out, comm=comm):
        name = a if a == "auto" else a.name
        if name != "auto" and not a.runs:
            try:
                run(name)
                fail.append(f"{coll}/{name}: ran although the table says: {a.reason}")
            except mscomm.InvalidArgument as e:
                if a.reason not in str(e):
                    fail.append(f"{coll}/{name}: refused with {e}, table says {a.reason}")
                refused.append(f"{coll}/{name}")
            continue
        run(name)
        ran.append(f"{coll}/{name}")

for count in [1, 777, 70001]:
    mine = (np.arange(N * count) % 13 + me).astype(np.float32)
    every = [(np.arange(N * count) % 13 + r).astype(np.float32) for r in range(N)]
    def allreduce(algo):
        x = mine[:count].copy()
        comm.allreduce(x, algorithm=algo)
        check(f"allreduce/{algo}/{count}", x, sum(e[:count] for e in every))
        y = np.zeros(count, np.float32)
        comm.allreduce(mine[:count], out=y, algorithm=algo)
        check(f"allreduce-out/{algo}/{count}", y, sum(e[:count] for e in every))
    forced("allreduce", mine[:count], allreduce)
    def reduce(algo):
        x = mine[:count].copy()
        comm.reduce(x, N - 1, algorithm=algo)
        if me == N - 1:
            check(f"reduce/{algo}/{count}", x, sum(e[:count] for e in every))
    forced("reduce", mine[:count], reduce)
    def allgather(algo):
        out = np.zeros(N * count, np.float32)
        comm.allgather(mine[:count], out=out, algorithm=algo)
        check(f"allgather/{algo}/{count}", out, np.concatenate([e[:count] for e in every]))
    forced("allgather", mine[:count], allgather)
    def broadcast(algo):
        b = mine[:count].copy()
        comm.broadcast(b, N - 1, algorithm=algo)
        check(f"broadcast/{algo}/{count}", b, every[N - 1][:count])
    forced("broadcast", mine[:count], broadcast)
    def alltoall(algo):
        out = np.zeros(N * count, np.float32)
        comm.alltoall(mine, out=out, algorithm=algo)
        check(f"alltoall/{algo}/{count}", out, np.concatenate([e[me * count:(me + 1) * count] for e in every]))
    forced("alltoall", mine, alltoall)
    def reduce_scatter(algo):
        out = np.zeros(count, np.float32)
        comm.reduce_scatter(mine, out=out, algorithm=algo)
        check(f"reduce_scatter/{algo}/{count}", out, sum(e[me * count:(me + 1) * count] for e in every))
    forced("reduce_scatter", mine, reduce_scatter)
    # alltoallv: rank r sends count + p elements to rank p
    send = [count + p for p in range(N)]
    offs = np.cumsum([0] + send)
    src_of = lambda r: (np.arange(offs[-1]) % 11 + r).astype(np.float32)
    def alltoallv(algo):
        out = np.zeros(N * (count + me), np.float32)
        comm.alltoallv(src_of(me), send, [count + me] * N, out=out, algorithm=algo)
        want = np.concatenate([src_of(r)[offs[me]:offs[me + 1]] for r in range(N)])
        check(f"alltoallv/{algo}/{count}", out, want)
    forced("alltoallv", src_of(me), alltoallv)
    def gather(algo):
        out = np.zeros(N * count, np.float32)
        comm.gather(mine[:count], 0, out=out, algorithm=algo)
        if me == 0:
            check(f"gather/{algo}/{count}", out, np.concatenate([e[:count] for e in every]))
    forced("gather", mine[:count], gather)
    def scatter(algo):
        out = np.zeros(count, np.float32)
        comm.scatter(mine if me == 0 else None, 0, out=out, algorithm=algo)
        check(f"scatter/{algo}/{count}", out, every[0][me * count:(me + 1) * count])
    forced("scatter", mine, scatter)
forced("barrier", None, lambda algo: comm.barrier(algorithm=algo))
emit({"fail": fail[:20], "ran": sorted(set(ran)), "refused": sorted(set(refused))})
'''


@pytest.mark.timeout(180)
@pytest.mark.parametrize("streaming", [False, True], ids=["memcpy", "streaming-stores"])
@pytest.mark.parametrize("nranks", [2, 3])
def test_every_algorithm_forced_by_argument_matches_numpy(nranks, streaming):
    """streaming-stores: every copy into an output uses them (MSCOMM_STREAM_MIN_BYTES=0), at odd
    sizes and unaligned offsets, so their head and tail handling is checked too."""
    env = {"MSCOMM_STREAM_MIN_BYTES": "0"} if streaming else {}
    job = run_job(nranks, FORCED, env=env, timeout=150).check_ok()
    for r in range(nranks):
        res = job.results(r)[0]
        assert res["fail"] == [], res["fail"]
    # every row of the table ran at least once (one host: all but the multi-host rows)
    ran = {name.split("/")[1] for name in res["ran"]}
    for coll in mscomm.selection.COLLECTIVES:
        for a in mscomm.selection.table(coll):
            if a.name not in ("hier",) and not (a.name in ("ring", "chain", "pairwise") and coll not in ("alltoallv",)):
                assert f"{coll}/{a.name}" in res["ran"], (coll, a.name, res["ran"])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("transport", ["tcp", "2perhost"])
def test_every_algorithm_forced_across_hosts(transport):
    """Across hosts the one-host rows are refused with their reason; the network rows (and hier
    with two ranks per host) give the reference."""
    job = run_job(4, FORCED, env=transports_env(transport), timeout=200).check_ok()
    for r in range(4):
        assert job.results(r)[0]["fail"] == [], job.results(r)[0]["fail"]
    ran = set(job.results(0)[0]["ran"])
    for row in ["allreduce/ring", "reduce/chain", "broadcast/chain", "allgather/ring", "reduce_scatter/ring",
                "alltoall/pairwise", "alltoallv/pairwise", "gather/rooted", "scatter/rooted", "barrier/dissemination"]:
        assert row in ran, (row, ran)
    if transport == "2perhost":
        assert "allreduce/hier" in ran, ran


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env, want", [
    ({"MSCOMM_ALLGATHER_ALGO": "ring"}, None),
    ({"MSCOMM_ALLTOALL_ALGO": "pairwise", "MSCOMM_BROADCAST_ALGO": "chain"}, None),
    ({"MSCOMM_REDUCE_SCATTER_ALGO": "bogus"}, "unknown reduce_scatter algorithm 'bogus'; the selection table has "
                                              "auto, ring, direct, staged"),
    ({"MSCOMM_ALLGATHER_ALGO": "staged", "MSCOMM_FORCE_TCP": "1"}, "allgather algorithm 'staged' cannot run this "
                                                                   "call: it needs every rank on one host"),
    ({"MSCOMM_ALLTOALL_ALGO": "direct", "MSCOMM_CMA": "0"}, "alltoall algorithm 'direct' cannot run this call: it "
                                                            "needs single-copy reads"),
], ids=["allgather-ring", "alltoall-pairwise-broadcast-chain", "unknown", "staged-over-tcp", "direct-without-cma"])
def test_algorithm_from_environment(env, want):
    job = run_job(2, r'''
comm = mscomm.init(timeout=30)
x = np.full(4000, comm.rank + 1, np.float32)
out = np.zeros(8000, np.float32)
try:
    comm.allgather(x, out=out)
    comm.alltoall(np.concatenate([x, x]), out=out)
    comm.broadcast(x, 0)
    comm.reduce_scatter(out[:4000], out=x[:2000])
    emit({"error": None})
except mscomm.MscommError as e:
    emit({"error": type(e).__name__, "message": str(e)})
''', env=env, timeout=90).check_ok()
    for r in range(2):
        res = job.results(r)[0]
        if want is None:
            assert res["error"] is None, res
        else:
            assert res["error"] == "InvalidArgument" and want in res["message"], res


@pytest.mark.timeout(60)
def test_tcp_refuses_shared_memory_algorithms_by_argument():
    job = run_job(2, r'''
comm = mscomm.init(timeout=30)
errors = []
for algo in ["rsag", "oneshot", "direct"]:
    try:
        comm.allreduce(np.ones(64, np.float32), algorithm=algo)
        errors.append(None)
    except mscomm.InvalidArgument as e:
        errors.append(str(e))
emit(errors)
''', env=transports_env("tcp"), timeout=45).check_ok()
    for r in range(2):
        for msg in job.results(r)[0]:
            assert msg and "MSCOMM_FORCE_TCP" in msg, msg
