"""MSCCL XML export, for MSCCL-style runtimes.

Each plan step becomes an MSCCL step: put -> ``s`` in the threadblock sending to that peer,
wait -> ``r`` in the threadblock receiving from it (placed where the matching put lands),
copy -> ``cpy`` and reduce -> ``cpy`` + ``re`` in a local threadblock; signals are implicit in
MSCCL's send/receive. Threadblocks are keyed by (send peer, receive peer, channel) and tree
batch t runs on channel ``t mod nchannels`` (up to :data:`MAX_CHANNELS`), so independent trees
proceed in parallel. A step depends on another threadblock's step only where data depend: it
reads (or, for ``re``, accumulates into) a chunk that step wrote. Order inside a threadblock is
MSCCL's own. ``minBytes``/``maxBytes`` give the range where the schedule is worth selecting:
from 1 KiB per chunk up (below that, per-step latency dominates and NCCL's defaults win).
"""
from __future__ import annotations

from collections import defaultdict, deque
from xml.etree import ElementTree as ET

BUFFER = {"input": "i", "output": "o", "scratch": "s"}
MAX_CHANNELS = 16
MIN_CHUNK_BYTES = 1024
MAX_BYTES = 1 << 40


def plan_to_msccl(plan: dict, name: str = "", max_channels: int = MAX_CHANNELS) -> str:
    """MSCCL ``<algo>`` XML text for a validated plan (version 1 or 2)."""
    from .plan import expand_plan

    plan = expand_plan(plan) if plan["version"] == 2 else plan
    N = plan["num_ranks"]
    nchannels = max(1, min(max_channels, len(plan["trees"])))
    landing: dict[tuple[int, int, int], deque] = defaultdict(deque)  # put destinations
    for entry in plan["ranks"]:
        for step in entry["steps"]:
            if step["op"] == "put":
                landing[(entry["rank"], step["peer"], step["tree"])].append(step["dst"])
    nchunks = N * plan["k"]
    algo = ET.Element("algo", name=name or plan.get("name") or
                      f"forestcoll-{plan['collective']}-{plan.get('topology', '')}",
                      proto="Simple", nchannels=str(nchannels), nchunksperloop=str(nchunks),
                      ngpus=str(N), coll=plan["collective"].replace("_", ""),
                      inplace="0", outofplace="1", minBytes=str(nchunks * MIN_CHUNK_BYTES),
                      maxBytes=str(MAX_BYTES))
    for entry in plan["ranks"]:
        r = entry["rank"]
        gpu = ET.SubElement(algo, "gpu", id=str(r), i_chunks=str(plan["buffers"]["input"]),
                            o_chunks=str(plan["buffers"]["output"]),
                            s_chunks=str(entry["scratch_chunks"]))
        tbs: dict[tuple[int, int, int], ET.Element] = {}
        last_write: dict[tuple, tuple[int, ET.Element]] = {}  # chunk -> (tb id, step)

        def emit(send: int, recv: int, chan: int, kind: str, src: list, dst: list) -> None:
            key = (send, recv, chan)
            if key not in tbs:
                tbs[key] = ET.SubElement(gpu, "tb", id=str(len(tbs)), send=str(send),
                                         recv=str(recv), chan=str(chan))
            tb = tbs[key]
            tb_id = int(tb.get("id"))
            reads = [tuple(src)] if kind in ("s", "cpy", "re") else []
            if kind == "re":
                reads.append(tuple(dst))
            depid, deps = -1, -1
            for chunk in reads:  # at most one cross-threadblock producer in these plans
                if chunk in last_write and last_write[chunk][0] != tb_id:
                    producer = last_write[chunk]
                    depid, deps = producer[0], int(producer[1].get("s"))
                    producer[1].set("hasdep", "1")
            step = ET.SubElement(tb, "step", s=str(len(tb)), type=kind,
                                 srcbuf=BUFFER[src[0]], srcoff=str(src[1]),
                                 dstbuf=BUFFER[dst[0]], dstoff=str(dst[1]), cnt="1",
                                 depid=str(depid), deps=str(deps), hasdep="0")
            if kind in ("r", "cpy", "re"):
                last_write[tuple(dst)] = (tb_id, step)

        chan = 0
        for step in entry["steps"]:
            op = step["op"]
            if "tree" in step:
                chan = step["tree"] % nchannels
            if op == "put":
                emit(step["peer"], -1, chan, "s", step["src"], step["dst"])
            elif op == "wait":
                dst = landing[(step["peer"], r, step["tree"])].popleft()
                emit(-1, step["peer"], chan, "r", dst, dst)
            elif op == "copy":
                emit(-1, -1, chan, "cpy", step["src"], step["dst"])
            elif op == "reduce":
                first, *rest = step["srcs"]
                if first != step["dst"]:
                    emit(-1, -1, chan, "cpy", first, step["dst"])
                for src in rest:
                    emit(-1, -1, chan, "re", src, step["dst"])
    ET.indent(algo)
    return ET.tostring(algo, encoding="unicode") + "\n"
