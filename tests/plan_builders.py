"""Plans for the executor tests and benchmarks: the classic ring as a plan, and ForestColl
plans of small topologies.

``python tests/plan_builders.py ring allreduce 4 -o ring4.json`` writes one."""
from __future__ import annotations

import argparse
import json
import sys

from mscomm.forestcoll.plan import buffer_chunks


def ring_plan(collective: str, n: int, name: str | None = None) -> dict:
    """The ring algorithm (what the native ``ring`` runs) as a plan with k = 1.

    Reduce-scatter: at step t rank r puts its partial sum of chunk (r-t-1) mod n to rank r+1 and
    adds the one of chunk (r-t-2) mod n it receives from rank r-1; after n-1 steps it holds
    chunk r. Allgather: at step t rank r forwards chunk (r-t) mod n. Allreduce is both.
    """
    steps: list[list[dict]] = [[] for _ in range(n)]
    scratch = [0] * n
    for r in range(n):
        nxt, prv = (r + 1) % n, (r - 1) % n
        s = steps[r]
        if collective in ("reduce_scatter", "allreduce"):
            # scratch[t]: what rank r-1 sends at step t; scratch[n-1+t]: my partial sum after step t
            scratch[r] = 2 * (n - 1) - 1 if n > 2 else 1
            for t in range(n - 1):
                send = ["input", (r - t - 1) % n] if t == 0 else ["scratch", n - 1 + t - 1]
                got = (r - t - 2) % n
                s.append({"op": "put", "peer": nxt, "src": send, "dst": ["scratch", t]})
                s.append({"op": "signal", "peer": nxt})
                s.append({"op": "wait", "peer": prv})
                last = t == n - 2
                dst = (["output", 0] if collective == "reduce_scatter" else ["output", got]) if last \
                    else ["scratch", n - 1 + t]
                s.append({"op": "reduce", "srcs": [["input", got], ["scratch", t]], "dst": dst})
        if collective == "allgather":
            s.append({"op": "copy", "src": ["input", 0], "dst": ["output", r]})
        if collective in ("allgather", "allreduce"):
            for t in range(n - 1):
                c = (r - t) % n
                s.append({"op": "put", "peer": nxt, "src": ["output", c], "dst": ["output", c]})
                s.append({"op": "signal", "peer": nxt})
                s.append({"op": "wait", "peer": prv})
    trees = [{"root": r, "multiplicity": 1, "first_chunk": 0,
              "edges": [[(r + i) % n, (r + i + 1) % n, []] for i in range(n - 1)]} for r in range(n)]
    return {"format": "mscomm-plan", "version": 1, "collective": collective, "topology": f"uniring{n}",
            "name": name or f"ring{n}", "num_ranks": n, "k": 1, "x_star": f"1/{n - 1}", "x": f"1/{n - 1}",
            "algbw_gbps": 1.0, "chunks_per_rank": 1, "buffers": buffer_chunks(collective, n, 1), "trees": trees,
            "ranks": [{"rank": r, "scratch_chunks": scratch[r], "steps": steps[r]} for r in range(n)]}


def exchange_plan() -> dict:
    """A 2-rank allreduce where both ranks reduce everything themselves, rank 0 sending its input
    only after writing its output: in place that input is already overwritten, so the executor
    must run it from a private copy (a plan that is not in-place safe)."""
    def put(peer, i, slot):
        return {"op": "put", "peer": peer, "src": ["input", i], "dst": ["scratch", slot]}

    def red(i):
        return {"op": "reduce", "srcs": [["input", i], ["scratch", i]], "dst": ["output", i]}

    rank0 = [{"op": "wait", "peer": 1}, red(0), red(1), put(1, 0, 0), put(1, 1, 1), {"op": "signal", "peer": 1}]
    rank1 = [put(0, 0, 0), put(0, 1, 1), {"op": "signal", "peer": 0}, {"op": "wait", "peer": 0}, red(0), red(1)]
    trees = [{"root": 0, "multiplicity": 1, "first_chunk": 0, "edges": [[0, 1, []]]},
             {"root": 1, "multiplicity": 1, "first_chunk": 0, "edges": [[1, 0, []]]}]
    return {"format": "mscomm-plan", "version": 1, "collective": "allreduce", "topology": "pair", "name": "exchange2",
            "num_ranks": 2, "k": 1, "x_star": "1", "x": "1", "algbw_gbps": 1.0, "chunks_per_rank": 1,
            "buffers": buffer_chunks("allreduce", 2, 1), "trees": trees,
            "ranks": [{"rank": 0, "scratch_chunks": 2, "steps": rank0}, {"rank": 1, "scratch_chunks": 2, "steps": rank1}]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["ring"])
    p.add_argument("collective", choices=["allreduce", "allgather", "reduce_scatter"])
    p.add_argument("nranks", type=int)
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args()
    with open(a.output, "w") as f:
        json.dump(ring_plan(a.collective, a.nranks), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
