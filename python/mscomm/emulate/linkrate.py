"""Measure each host pair's rate with mscomm's own TCP transport (iperf-style), next to the nominal one.

Run as the ranks of an emulated job::

    mscomm-run --emulate emu-2tier4x2 --scale 0.002 -- python -m mscomm.emulate.linkrate emu-2tier4x2 --scale 0.002

For every ordered pair of hosts (one pair at a time, the first rank of each), the sender sends
``--bytes`` ``--reps`` times with ``mscomm.send`` and waits for a one-byte answer sent after the
last byte arrived; rate = bytes / time. Rank 0 prints one JSON object per pair with the nominal
bandwidth of the slowest cable on the way (GB/s), the rate it was shaped to, and the measured rate
(both MB/s), so the shaping error can be told apart from the quality of a schedule.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

import numpy as np


def measure(comm, fabric, nbytes: int, reps: int) -> list[dict]:
    import mscomm

    firsts = [h.ranks[0] for h in fabric.hosts]
    buf = np.zeros(nbytes, np.uint8)
    ack = np.zeros(1, np.uint8)
    rows = []
    for a in fabric.hosts:
        for b in fabric.hosts:
            if a.index == b.index:
                continue
            ra, rb = firsts[a.index], firsts[b.index]
            mscomm.barrier(comm=comm)
            elapsed = 0.0
            for trial in range(2):  # the first warms the connection up
                if comm.rank == ra:
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        mscomm.send(buf, rb, comm=comm)
                    mscomm.recv(ack, rb, comm=comm)
                    elapsed = time.perf_counter() - t0
                elif comm.rank == rb:
                    for _ in range(reps):
                        mscomm.recv(buf, ra, comm=comm)
                    mscomm.send(ack, ra, comm=comm)
            got = np.array([elapsed], np.float64)
            mscomm.allreduce(got, "max", comm=comm)
            shaped, nominal = fabric.path_rate(a.index, b.index)
            rows.append({"src_host": a.index, "dst_host": b.index, "nominal_gbps": float(nominal),
                         "shaped_MBps": shaped / 1e6, "measured_MBps": nbytes * reps / got[0] / 1e6,
                         "measured_over_shaped": nbytes * reps / got[0] / shaped})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from mscomm.emulate.runner import DEFAULT_SCALE, load_fabric

    parser = argparse.ArgumentParser(prog="python -m mscomm.emulate.linkrate", description=__doc__.split("\n")[0])
    parser.add_argument("topology", help="the topology the job was started with (--emulate)")
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE, help="the --scale the job was started with")
    parser.add_argument("--bytes", type=int, default=4 << 20, help="bytes per send (default 4 MiB)")
    parser.add_argument("--reps", type=int, default=4, help="sends per measurement")
    parser.add_argument("-o", "--output", help="rank 0 also writes the rows here as a JSON list")
    args = parser.parse_args(argv)

    import mscomm

    fabric = load_fabric(args.topology, args.scale)
    comm = mscomm.init()
    if comm.num_hosts != len(fabric.hosts):
        print(f"linkrate: {comm.num_hosts} hosts seen, topology has {len(fabric.hosts)}; "
              "run it under mscomm-run --emulate with the same topology", file=sys.stderr)
        return 2
    rows = measure(comm, fabric, args.bytes, args.reps)
    if comm.rank == 0:
        for row in rows:
            print(json.dumps(row), flush=True)
        if args.output:
            with open(args.output, "w") as f:
                json.dump({"topology": fabric.topology.name, "scale": args.scale, "pairs": rows}, f, indent=1)
    mscomm.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
