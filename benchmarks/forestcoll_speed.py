"""Generation speed and peak memory of ForestColl per stage (a benchmark, not a test).

Usage::

    PYTHONPATH=python python benchmarks/forestcoll_speed.py [name:boxes ...]
        [--collective allreduce] [--flow native] [--limit S] [--json FILE]

Each topology runs in its own process (peak RSS is that process's ru_maxrss) and is stopped
after --limit seconds. Prints one Markdown row per topology with the seconds of each stage
(x*: optimal rate, splitting, packing, verify, summed over the collective's phases; plan:
building and validating the compact plan) and, per box family, the fitted growth exponent
(slope of log seconds against log GPUs) of every stage. Works on the code before the
reduce-scatter fix too (it then times allgather trees only, as that code did).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import resource
import time

from mscomm.topology import zoo

DEFAULT = [f"dgx-a100:{n}" for n in (2, 4, 8, 16, 32, 64, 128)] + \
    [f"mi250:{n}" for n in (2, 4, 8, 16)]
STAGES = ("optimal", "splitting", "packing", "verify", "plan", "total")


def run(spec: str, collective: str, flow: str, queue) -> None:
    import mscomm.forestcoll as fc
    from mscomm.forestcoll import plan as planmod

    name, boxes = spec.split(":")
    topo = zoo.boxes_generator(name)(int(boxes))
    start = time.perf_counter()
    if hasattr(fc, "generate_collective"):
        coll = fc.generate_collective(topo, collective, flow_func=flow)
        # A reduce-scatter phase that reuses the allgather trees (symmetric links) costs nothing.
        scheds = list({id(s.trees): s for s in coll.phases.values()}.values())
        obj = coll
    else:  # code before the reduce-scatter fix: one tree set
        scheds = [fc.generate(topo, flow_func=flow)]
        obj = scheds[0]
    seconds = {s: sum(x.seconds.get(s, 0.0) for x in scheds) for s in STAGES[:4]}
    clock = time.perf_counter()
    plan = planmod.build_plan(obj, collective)
    try:
        planmod.validate_plan(plan, simulate=False, topology=topo)
    except TypeError:  # before validate_plan knew the topology
        planmod.validate_plan(plan, simulate=False)
    seconds["plan"] = time.perf_counter() - clock
    seconds["total"] = time.perf_counter() - start
    queue.put({"spec": spec, "topology": topo.name, "gpus": topo.num_ranks,
               "x_star": str(scheds[0].x_star), "k": scheds[0].k,
               "batches": sum(len(x.trees) for x in scheds), "seconds": seconds,
               "plan_mb": len(json.dumps(plan, separators=(",", ":"))) / 1e6,
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def slope(points) -> float:
    pts = [(math.log(n), math.log(t)) for n, t in points if t > 0.005]
    if len(pts) < 2:
        return float("nan")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="*", default=DEFAULT)
    parser.add_argument("--collective", default="allreduce")
    parser.add_argument("--flow", default="native")
    parser.add_argument("--limit", type=float, default=600)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    print(f"{args.collective}, flow {args.flow}")
    print("| topology | GPUs | x* (GB/s) | k | batches | x* s | splitting s | packing s | "
          "verify s | plan s | total s | peak MB | plan MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for spec in args.specs:
        queue = mp.Queue()
        proc = mp.Process(target=run, args=(spec, args.collective, args.flow, queue))
        proc.start()
        proc.join(args.limit)
        if proc.is_alive():
            proc.terminate()
            proc.join()
            print(f"| {spec} | | | | | | | | | | > {args.limit:.0f} (stopped) | | |", flush=True)
            continue
        if proc.exitcode != 0:
            print(f"| {spec} | | | | | | | | | | failed (exit {proc.exitcode}) | | |", flush=True)
            continue
        r = queue.get()
        rows.append(r)
        s = r["seconds"]
        print(f"| {r['topology']} | {r['gpus']} | {r['x_star']} | {r['k']} | {r['batches']} | "
              + " | ".join(f"{s[x]:.2f}" for x in STAGES)
              + f" | {r['peak_mb']:.0f} | {r['plan_mb']:.2f} |", flush=True)
    families: dict = {}
    for r in rows:
        families.setdefault(r["spec"].split(":")[0], []).append(r)
    print("\n| family | " + " | ".join(f"{s} exponent" for s in STAGES) + " | peak MB exponent |")
    print("|---|" + "---|" * (len(STAGES) + 1))
    for fam, rs in families.items():
        exps = [slope([(r["gpus"], r["seconds"][s]) for r in rs]) for s in STAGES]
        mem = slope([(r["gpus"], r["peak_mb"]) for r in rs])
        print(f"| {fam} | " + " | ".join(f"{e:.2f}" for e in exps) + f" | {mem:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
