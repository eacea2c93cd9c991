"""The tuning table's overrides: every algorithm of every collective, forced by argument or by
MSCOMM_<NAME>_ALGO, gives the numpy reference; names that cannot run here fail clearly."""

from __future__ import annotations

import pytest

from harness import run_job, transports_env

FORCED = r'''
import itertools
comm = mscomm.init(timeout=60)
N, me = comm.size, comm.rank
ALGOS = {
    "allreduce": ["auto", "oneshot", "rsag", "direct", "ring"],
    "allgather": ["auto", "staged", "direct", "ring"],
    "broadcast": ["auto", "staged", "direct", "chain"],
    "alltoall": ["auto", "staged", "direct", "pairwise"],
    "reduce_scatter": ["auto", "staged", "direct", "ring"],
}
fail = []
def check(case, got, want):
    if not np.array_equal(got, want):
        fail.append(f"{case}: got {got[:4]} want {want[:4]}")
for count in [1, 777, 70001]:
    mine = (np.arange(N * count) % 13 + me).astype(np.float32)
    every = [(np.arange(N * count) % 13 + r).astype(np.float32) for r in range(N)]
    for algo in ALGOS["allreduce"]:
        if algo == "oneshot" and count * 4 > 1 << 20:
            continue
        x = mine[:count].copy()
        comm.allreduce(x, algorithm=algo)
        check(f"allreduce/{algo}/{count}", x, sum(e[:count] for e in every))
    for algo in ALGOS["allgather"]:
        out = np.zeros(N * count, np.float32)
        comm.allgather(mine[:count], out=out, algorithm=algo)
        check(f"allgather/{algo}/{count}", out, np.concatenate([e[:count] for e in every]))
    for algo in ALGOS["broadcast"]:
        b = mine[:count].copy()
        comm.broadcast(b, N - 1, algorithm=algo)
        check(f"broadcast/{algo}/{count}", b, every[N - 1][:count])
    for algo in ALGOS["alltoall"]:
        out = np.zeros(N * count, np.float32)
        comm.alltoall(mine, out=out, algorithm=algo)
        check(f"alltoall/{algo}/{count}", out, np.concatenate([e[me * count:(me + 1) * count] for e in every]))
    for algo in ALGOS["reduce_scatter"]:
        out = np.zeros(count, np.float32)
        comm.reduce_scatter(mine, out=out, algorithm=algo)
        check(f"reduce_scatter/{algo}/{count}", out, sum(e[me * count:(me + 1) * count] for e in every))
    # alltoallv (no algorithm choice): rank r sends count + p elements to rank p
    send = [count + p for p in range(N)]
    offs = np.cumsum([0] + send)
    src_of = lambda r: (np.arange(offs[-1]) % 11 + r).astype(np.float32)
    out = np.zeros(N * (count + me), np.float32)
    comm.alltoallv(src_of(me), send, [count + me] * N, out=out)
    want = np.concatenate([src_of(r)[offs[me]:offs[me + 1]] for r in range(N)])
    check(f"alltoallv/{count}", out, want)
emit(fail[:20])
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
        assert job.results(r)[0] == [], job.results(r)[0]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("env, want", [
    ({"MSCOMM_ALLGATHER_ALGO": "ring"}, None),
    ({"MSCOMM_ALLTOALL_ALGO": "pairwise", "MSCOMM_BROADCAST_ALGO": "chain"}, None),
    ({"MSCOMM_REDUCE_SCATTER_ALGO": "bogus"}, "unknown reduce_scatter algorithm 'bogus'; choose auto, staged, "
                                              "direct, ring"),
    ({"MSCOMM_ALLGATHER_ALGO": "staged", "MSCOMM_FORCE_TCP": "1"}, "allgather algorithm 'staged' needs every rank "
                                                                   "on one host"),
    ({"MSCOMM_ALLTOALL_ALGO": "direct", "MSCOMM_CMA": "0"}, "alltoall algorithm 'direct' needs single-copy reads"),
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
