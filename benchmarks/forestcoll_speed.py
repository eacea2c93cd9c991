"""Generation speed of ForestColl on zoo topologies (a benchmark, not a test).

Usage: PYTHONPATH=python python benchmarks/forestcoll_speed.py [name:boxes ...] [--limit S]
Prints one Markdown table row per topology; stops a topology after --limit seconds.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time

from mscomm.forestcoll import generate
from mscomm.topology import zoo

DEFAULT = ["dgx-a100:1", "dgx-a100:2", "dgx-a100:4", "dgx-a100:8", "dgx-a100:16",
           "dgx-h100:2", "dgx-h100:16", "mi250:1", "mi250:2", "mi250:4", "dgx-a100:32"]


def run(spec: str, queue) -> None:
    name, boxes = spec.split(":")
    topo = zoo.boxes_generator(name)(int(boxes))
    start = time.perf_counter()
    schedule = generate(topo)
    total = time.perf_counter() - start
    s = schedule.seconds
    queue.put(f"| {topo.name} | {topo.num_ranks} | {schedule.x_star} | {schedule.k} | "
              f"{len(schedule.trees)} | {s['optimal']:.2f} | {s['splitting']:.2f} | "
              f"{s['packing']:.2f} | {total:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="*", default=DEFAULT)
    parser.add_argument("--limit", type=float, default=600)
    args = parser.parse_args()
    print("| topology | GPUs | x* (GB/s) | k | tree batches | x* s | splitting s | packing s "
          "| total s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in args.specs:
        queue = mp.Queue()
        proc = mp.Process(target=run, args=(spec, queue))
        proc.start()
        proc.join(args.limit)
        if proc.is_alive():
            proc.terminate()
            print(f"| {spec} | | | | | | | | > {args.limit:.0f} (stopped) |", flush=True)
        else:
            print(queue.get(), flush=True)


if __name__ == "__main__":
    main()
