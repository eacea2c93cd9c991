"""Soak test: N local ranks run mixed collectives for a given time, checking every result.

``python benchmarks/soak.py --minutes M --ranks 4`` starts the ranks itself (one process per rank,
same environment as ``mscomm-run``). Every iteration runs allreduce, allgather, reduce_scatter,
alltoall, alltoallv, broadcast and barrier at one size (1 KB to 4 MB, cycled) and one dtype
(cycled), and compares each result with a numpy reference computed locally: every rank's input is
a function of (iteration, rank), so any rank can rebuild every other rank's input. Inputs are
small integers, so float sums are exact and a reference compare can demand equality.

Each rank reports iterations, wrong results (must be 0) and its resident set size after the first
cycle of sizes x dtypes and at the end (must stay flat: no per-call leak). Exit status is non-zero on any wrong
result, rank failure, or RSS growth above ``--max-rss-growth-mb``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SIZES_BYTES = (1 << 10, 64 << 10, 1 << 20, 4 << 20)
DTYPES = ("float32", "float64", "int32", "int64", "float16")
MARK = "@@soak@@ "
WARMUP_ITERATIONS = len(SIZES_BYTES) * len(DTYPES)


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def rank_input(np, it: int, rank: int, count: int, dtype: str):
    # Values in [-3, 4]: sums over 8 ranks stay exact in float16 and in every integer type.
    base = np.arange(count, dtype=np.int64)
    return (((base * (rank + 1) + it * 7 + rank) % 8) - 3).astype(dtype)


def alltoallv_counts(it: int, src: int, size: int, block: int) -> list[int]:
    # Uneven, changing every iteration, some zero.
    return [((it + src * 3 + dst * 5) % 4) * block // 3 for dst in range(size)]


def worker(minutes: float, seed_offset: int) -> int:
    import numpy as np

    import mscomm

    rank = int(os.environ["MSCOMM_RANK"])
    size = int(os.environ["MSCOMM_WORLD_SIZE"])
    mscomm.init(timeout=120)  # the default communicator of the module-level collectives below
    wrong: list[str] = []

    def check(what: str, got, want) -> None:
        if not np.array_equal(got, want):
            bad = int(np.count_nonzero(got != want))
            wrong.append(f"{what}: {bad} of {want.size} elements differ")

    deadline = time.monotonic() + minutes * 60
    it = 0
    rss_start = None
    rss_samples: list[int] = []
    counts_per_op: dict[str, int] = {}
    t0 = time.monotonic()
    while True:
        nbytes = SIZES_BYTES[it % len(SIZES_BYTES)]
        dtype = DTYPES[(it // len(SIZES_BYTES)) % len(DTYPES)]
        itemsize = np.dtype(dtype).itemsize
        count = max(size, nbytes // itemsize) // size * size
        key = it + seed_offset
        inputs = [rank_input(np, key, r, count, dtype) for r in range(size)]
        mine = inputs[rank]
        tag = f"iter {it} {dtype} {count * itemsize}B"

        x = mine.copy()
        mscomm.allreduce(x)
        check(f"allreduce sum {tag}", x, np.sum(inputs, axis=0, dtype=np.int64).astype(dtype))
        x = mine.copy()
        mscomm.allreduce(x, "max")
        check(f"allreduce max {tag}", x, np.max(inputs, axis=0))

        block = count // size
        out = np.empty(count, dtype)
        mscomm.allgather(mine[:block], out=out)
        check(f"allgather {tag}", out, np.concatenate([inp[:block] for inp in inputs]))

        out = np.empty(block, dtype)
        mscomm.reduce_scatter(mine, out=out)
        full = np.sum(inputs, axis=0, dtype=np.int64).astype(dtype)
        check(f"reduce_scatter {tag}", out, full[rank * block:(rank + 1) * block])

        out = np.empty(count, dtype)
        mscomm.alltoall(mine, out=out)
        check(f"alltoall {tag}", out, np.concatenate([inputs[q][rank * block:(rank + 1) * block] for q in range(size)]))

        send = alltoallv_counts(key, rank, size, block)
        recv = [alltoallv_counts(key, q, size, block)[rank] for q in range(size)]
        out = np.full(count, -99, dtype)
        mscomm.alltoallv(mine, send, recv if it % 2 else None, out=out)
        pieces = []
        for q in range(size):
            sc = alltoallv_counts(key, q, size, block)
            start = sum(sc[:rank])
            pieces.append(inputs[q][start:start + sc[rank]])
        want = np.concatenate(pieces)
        check(f"alltoallv {tag}", out[:want.size], want)

        root = it % size
        x = mine.copy()
        mscomm.broadcast(x, root=root)
        check(f"broadcast root {root} {tag}", x, inputs[root])

        mscomm.barrier()
        for op in ("allreduce", "allgather", "reduce_scatter", "alltoall", "alltoallv", "broadcast", "barrier"):
            counts_per_op[op] = counts_per_op.get(op, 0) + 1
        it += 1
        # Baseline after one full cycle of sizes x dtypes, so every buffer size has been seen once.
        if it % WARMUP_ITERATIONS == 0:
            rss_samples.append(rss_kb())
            if rss_start is None:
                rss_start = rss_samples[-1]
        # Every rank must agree on when to stop, or one would wait in a collective alone.
        stop = np.array([1 if time.monotonic() >= deadline else 0], np.int32)
        mscomm.allreduce(stop, "max")
        if stop[0]:
            break
        if len(wrong) > 20:
            break
    report = {"rank": rank, "iterations": it, "wrong": len(wrong), "wrong_examples": wrong[:5],
              "rss_start_kb": rss_start if rss_start is not None else rss_kb(), "rss_end_kb": rss_kb(),
              "rss_samples_mb": [round(k / 1024, 1) for k in rss_samples[:: max(1, len(rss_samples) // 10)]], "seconds": round(time.monotonic() - t0, 1),
              "calls": counts_per_op}
    print(MARK + json.dumps(report), flush=True)
    mscomm.finalize()
    return 1 if wrong else 0


def launch(minutes: float, nranks: int, extra_env: dict[str, str], max_growth_mb: float) -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    from mscomm.launcher import job_environment, new_job, sweep_shm

    unique_id, job_tag = new_job()
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", "--minutes", str(minutes)],
                              env=job_environment(r, nranks, unique_id, job_tag, extra_env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(nranks)]
    budget = minutes * 60 + 300
    t0 = time.monotonic()
    reports, status = [], 0
    for r, p in enumerate(procs):
        try:
            so, se = p.communicate(timeout=max(1.0, budget - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            so, se = p.communicate()
            print(f"rank {r}: hung, killed", flush=True)
            status = 1
        lines = [json.loads(line[len(MARK):]) for line in so.splitlines() if line.startswith(MARK)]
        if p.returncode != 0 or not lines:
            print(f"rank {r}: exit {p.returncode}\n{se[-3000:]}", flush=True)
            status = 1
        reports.extend(lines)
    leftovers = sweep_shm(job_tag)
    print(f"soak: {nranks} ranks, {minutes} min, transport {'tcp' if extra_env.get('MSCOMM_FORCE_TCP') else 'shm'}, "
          f"sizes {[s for s in SIZES_BYTES]} B, dtypes {list(DTYPES)}")
    print(f"{'rank':>4} {'iters':>7} {'wrong':>6} {'rss start MB':>13} {'rss end MB':>11} {'growth MB':>10} {'s':>7}")
    for rep in sorted(reports, key=lambda x: x["rank"]):
        growth = (rep["rss_end_kb"] - rep["rss_start_kb"]) / 1024
        print(f"{rep['rank']:>4} {rep['iterations']:>7} {rep['wrong']:>6} {rep['rss_start_kb'] / 1024:>13.1f} "
              f"{rep['rss_end_kb'] / 1024:>11.1f} {growth:>10.1f} {rep['seconds']:>7}")
        print(f"     rss samples (MB, every {WARMUP_ITERATIONS} iterations, thinned): {rep['rss_samples_mb']}")
        for w in rep["wrong_examples"]:
            print(f"     wrong: {w}")
        if rep["wrong"] or growth > max_growth_mb:
            status = 1
    if reports:
        print(f"collective calls per rank: {reports[0]['calls']}")
    print(f"/dev/shm leftovers of the job: {len(leftovers)}")
    if leftovers:
        status = 1
    print("RESULT:", "PASS" if status == 0 else "FAIL", flush=True)
    return status


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--tcp", action="store_true", help="force the TCP transport between ranks")
    ap.add_argument("--max-rss-growth-mb", type=float, default=32.0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.minutes, 0)
    return launch(args.minutes, args.ranks, {"MSCOMM_FORCE_TCP": "1"} if args.tcp else {}, args.max_rss_growth_mb)


if __name__ == "__main__":
    sys.exit(main())
