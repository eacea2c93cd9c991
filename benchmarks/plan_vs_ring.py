"""The ring as a plan run by the executor against the native ring allreduce, interleaved.

Run under the launcher (one host; add --force-tcp for TCP between the ranks)::

    mscomm-run -n 4 python benchmarks/plan_vs_ring.py --sizes 1M,4M,16M,64M --reps 9

Every repetition times the native ring and then the plan on the same buffers (out of place,
float32 sum), each after a barrier, taking the slowest rank; the table shows the medians and
the median of the per-repetition ratios plan/native (goal: at most 1.3).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import mscomm  # noqa: E402
from mscomm.bench.sizes import human, parse_size  # noqa: E402
from plan_builders import ring_plan  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1M,4M,16M,64M")
    p.add_argument("--reps", type=int, default=9)
    p.add_argument("--collective", default="allreduce", choices=["allreduce", "allgather", "reduce_scatter"])
    a = p.parse_args()
    comm = mscomm.init()
    boot = comm.bootstrap
    plan = comm.load_plan(ring_plan(a.collective, comm.size))

    def slowest(v: float) -> float:
        return max(float(x.decode()) for x in boot.allgather(repr(v).encode(), comm.timeout))

    call = getattr(mscomm, a.collective)
    rows = []
    for size in [parse_size(s) for s in a.sizes.split(",")]:
        n = size // 4
        if a.collective == "reduce_scatter":
            n -= n % comm.size
        x = np.ones(n, np.float32)
        out_n = {"allreduce": n, "allgather": n * comm.size, "reduce_scatter": n // comm.size}[a.collective]
        out = np.zeros(out_n, np.float32)
        iters = max(2, min(50, (64 << 20) // max(size, 1)))
        runs = {"ring": lambda: call(x, out=out, comm=comm, algorithm="ring"),
                "plan": lambda: call(x, out=out, comm=comm, algorithm=plan.name)}
        for fn in runs.values():
            fn()
        times: dict[str, list[float]] = {"ring": [], "plan": []}
        for _ in range(a.reps):
            for name, fn in runs.items():
                boot.barrier(comm.timeout)
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn()
                times[name].append(slowest((time.perf_counter() - t0) / iters))
        ratio = statistics.median(p / r for p, r in zip(times["plan"], times["ring"]))
        rows.append((size, statistics.median(times["ring"]) * 1e6, statistics.median(times["plan"]) * 1e6, ratio))
    if comm.rank == 0:
        tcp = os.environ.get("MSCOMM_FORCE_TCP") == "1"
        print(f"# {a.collective}, {comm.size} ranks, {'tcp' if tcp else 'shm'}, float32 sum, out of place, "
              f"median of {a.reps}")
        print(f"# {'size':>8} {'ring(us)':>10} {'plan(us)':>10} {'plan/ring':>9}")
        for size, r, pl, ratio in rows:
            print(f"  {human(size):>8} {r:10.1f} {pl:10.1f} {ratio:9.2f}")
    comm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
