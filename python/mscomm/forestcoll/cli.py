"""``mscomm-plan``: generate a ForestColl schedule and write it as a plan (and MSCCL XML).

Example::

    mscomm-plan dgx-a100 --n-boxes 2 --collective allreduce -o plan.json --msccl plan.xml
"""
from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from typing import Optional, Sequence

from ..topology import TopologyError, get
from .plan import PlanError, build_plan, rank_steps, save_plan, validate_plan
from .ring import ring_plan, ring_throughput
from .schedule import COLLECTIVES

SIMULATE_UP_TO = 64  # ranks: the symbolic run of every plan step is checked up to this size


class _Bar:
    """tqdm progress bars on stderr, one per long step, appearing after the first second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bars = enabled, {}

    def __call__(self, step: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(step)
        if bar is None:
            bar = self.bars[step] = tqdm(total=total, desc=step, delay=1.0, file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mscomm-plan", description="Throughput-optimal collective schedules (ForestColl).")
    parser.add_argument("topology", help="JSON file, zoo name (e.g. dgx-a100x2), box generator "
                        "(dgx-a100, dgx-h100, mi250, with --n-boxes) or 'local'")
    parser.add_argument("--n-boxes", type=int, help="number of boxes (hosts)")
    parser.add_argument("--collective", "-c", choices=COLLECTIVES, default="allreduce")
    parser.add_argument("--k", type=int, help="trees per root (default: smallest optimal k)")
    parser.add_argument("-o", "--output", help="write the plan JSON here")
    parser.add_argument("--msccl", help="also write MSCCL XML here")
    parser.add_argument("--plot", help="draw the topology and trees to this PNG")
    parser.add_argument("--size", type=float, default=1 << 30,
                        help="message size in bytes for the theoretical time (default 1 GiB)")
    parser.add_argument("--no-ring", action="store_true", help="skip the ring baseline")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--flow", choices=("native", "scipy", "networkx"), default="native",
                        help="max-flow solver")
    parser.add_argument("--rank", type=int,
                        help="write (with -o) or print only this rank's steps (rank_steps JSON)")
    parser.add_argument("--ring", action="store_true",
                        help="emit the ring baseline as the plan instead of ForestColl")
    args = parser.parse_args(argv)
    if args.k is not None and args.k < 1:
        parser.error("--k must be a positive integer")
    if args.plot:  # check before spending minutes on generation
        from .plot import check_plot_dependencies

        try:
            check_plot_dependencies()
        except ImportError as exc:
            print(f"mscomm-plan: error: {exc}", file=sys.stderr)
            return 2

    from . import generate_collective  # after argument parsing, so --help stays fast

    try:
        topo = get(args.topology, args.n_boxes)
    except TopologyError as exc:
        print(f"mscomm-plan: error: {exc}", file=sys.stderr)
        return 2
    if args.rank is not None and not 0 <= args.rank < topo.num_ranks:
        parser.error(f"--rank must be in 0..{topo.num_ranks - 1}")
    bar = _Bar(sys.stderr.isatty() and not args.json)
    coll = schedule = None
    if args.ring:
        try:
            plan = ring_plan(topo, args.collective)
        except ValueError as exc:
            print(f"mscomm-plan: error: {exc}", file=sys.stderr)
            return 2
        summary = {"topology": topo.name, "num_ranks": topo.num_ranks,
                   "collective": args.collective, "algorithm": "ring", "k": plan["k"],
                   "x": plan["x"], "x_gbps": float(Fraction(plan["x"])),
                   "algbw_gbps": plan["algbw_gbps"], "bytes": args.size,
                   "time_s": args.size / (plan["algbw_gbps"] * 1e9)}
    else:
        coll = generate_collective(topo, args.collective, k=args.k, flow_func=args.flow,
                                   progress=bar)
        schedule = coll.phases.get("allgather") or coll.phases["reduce_scatter"]
        summary = schedule.summary(args.collective, args.size)
        summary.update(algorithm="forestcoll", algbw_gbps=float(coll.algbw()),
                       busbw_gbps=float(coll.busbw()), time_s=coll.time(args.size),
                       phases=coll.summary()["phases"])
        if not args.no_ring:
            ring = ring_throughput(topo)
            summary.update(ring_x=str(ring.x), ring_x_gbps=float(ring.x),
                           ring_count=len(ring.rings),
                           forestcoll_over_ring=float(coll.x() / ring.x))
        bar("building the plan", 0, 1)
        plan = build_plan(coll, args.collective)
        bar("building the plan", 1, 1)
    try:  # every plan is checked against the fabric before anything is written
        bar("validating the plan", 0, 1)
        validate_plan(plan, simulate=topo.num_ranks <= SIMULATE_UP_TO, topology=topo)
        bar("validating the plan", 1, 1)
    except PlanError as exc:
        print(f"mscomm-plan: internal error: the plan fails validation: {exc}", file=sys.stderr)
        return 3
    written = []
    if args.rank is not None:
        steps = rank_steps(plan, args.rank)
        if args.output:
            with open(args.output, "w") as f:
                json.dump(steps, f, separators=(",", ":"))
            written.append(args.output)
        else:
            print(json.dumps(steps))
            return 0
    elif args.output:
        save_plan(plan, args.output)
        written.append(args.output)
    if args.msccl:
        from .msccl import plan_to_msccl

        with open(args.msccl, "w") as f:
            f.write(plan_to_msccl(plan))
        written.append(args.msccl)
    if args.plot:
        from .plot import plot_schedule

        if coll is None:
            print("mscomm-plan: --plot draws ForestColl trees; not with --ring", file=sys.stderr)
        else:
            plot_schedule(coll, args.plot)
            written.append(args.plot)
    summary["written"] = written
    if args.json:
        print(json.dumps(summary))
    elif coll is None:
        print(f"ring        {topo.name}: {topo.num_ranks} ranks, {plan['k']} ring(s), "
              f"x = {summary['x_gbps']:.4g} GB/s, {args.collective} algbw "
              f"{summary['algbw_gbps']:.4g} GB/s")
        print("\n".join(f"wrote       {path}" for path in written))
    else:
        _print(summary, topo, schedule)
    return 0


def _print(s: dict, topo, schedule) -> None:
    cut = s["binding_cut"]
    ranks_in = [n for n in cut if n in set(topo.compute)]
    secs = s["generation_seconds"]
    lines = [
        f"topology    {topo.name}: {topo.num_ranks} ranks, {len(topo.switches)} switches, "
        f"{len(topo.links)} links",
        f"x*          {s['x_star']} GB/s = {s['x_star_gbps']:.4g} GB/s per shard",
        f"k           {s['k']} trees per root ({s['tree_batches']} tree batches), "
        f"{float(schedule.tree_bandwidth):.4g} GB/s per tree",
        f"binding cut {len(ranks_in)} ranks + {len(cut) - len(ranks_in)} switches: "
        f"{', '.join(cut[:6])}{' ...' if len(cut) > 6 else ''}",
    ]
    if s["x"] != s["x_star"]:
        lines.append(f"x (fixed k) {s['x']} GB/s = {s['x_gbps']:.4g} GB/s")
    if len(s.get("phases", {})) > 1 or "reduce_scatter" in s.get("phases", {}):
        lines.append("phases      " + "; ".join(
            f"{name} x = {p['x']} GB/s, k = {p['k']}" for name, p in s["phases"].items()))
    lines.append(f"{s['collective']:<11} algbw {s['algbw_gbps']:.4g} GB/s, busbw "
                 f"{s['busbw_gbps']:.4g} GB/s, {s['time_s'] * 1e3:.4g} ms for {s['bytes']:.0f} B")
    if "ring_x" in s:
        lines.append(f"ring        x = {s['ring_x_gbps']:.4g} GB/s with {s['ring_count']} ring(s); "
                     f"ForestColl/ring = {s['forestcoll_over_ring']:.3g}x")
    lines.append(f"generation  {secs['total']:.3g} s (optimal {secs['optimal']:.3g} s, splitting "
                 f"{secs['splitting']:.3g} s, packing {secs['packing']:.3g} s)")
    lines += [f"wrote       {path}" for path in s["written"]]
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
