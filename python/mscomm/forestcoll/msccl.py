"""MSCCL XML export, for MSCCL-style runtimes.

Each plan step becomes an MSCCL step: put -> ``s`` in the threadblock sending to that peer,
wait -> ``r`` in the threadblock receiving from it (placed where the matching put lands),
copy -> ``cpy`` and reduce -> ``cpy`` + ``re`` in a local threadblock; signals are implicit in
MSCCL's send/receive. Every step depends on the rank's previous step when that one sits in
another threadblock, so each rank runs its steps in plan order, which the plan guarantees is
deadlock free. (That order is conservative: it gives up overlap between threadblocks.)
"""
from __future__ import annotations

from collections import defaultdict, deque
from xml.etree import ElementTree as ET

BUFFER = {"input": "i", "output": "o", "scratch": "s"}


def plan_to_msccl(plan: dict, name: str = "") -> str:
    """MSCCL ``<algo>`` XML text for a validated plan."""
    N = plan["num_ranks"]
    landing: dict[tuple[int, int], deque] = defaultdict(deque)  # (src, dst) -> put destinations
    for entry in plan["ranks"]:
        for step in entry["steps"]:
            if step["op"] == "put":
                landing[(entry["rank"], step["peer"])].append(step["dst"])
    algo = ET.Element("algo", name=name or f"forestcoll-{plan['collective']}-{plan['topology']}",
                      proto="Simple", nchannels="1", nchunksperloop=str(N * plan["k"]),
                      ngpus=str(N), coll=plan["collective"].replace("_", ""),
                      inplace="0", outofplace="1", minBytes="0", maxBytes="0")
    for entry in plan["ranks"]:
        r = entry["rank"]
        gpu = ET.SubElement(algo, "gpu", id=str(r), i_chunks=str(plan["buffers"]["input"]),
                            o_chunks=str(plan["buffers"]["output"]),
                            s_chunks=str(entry["scratch_chunks"]))
        tbs: dict[tuple[int, int], ET.Element] = {}
        previous = None  # (tb id, step element) of the rank's last step

        def emit(send: int, recv: int, kind: str, src: list, dst: list) -> None:
            nonlocal previous
            key = (send, recv)
            if key not in tbs:
                tbs[key] = ET.SubElement(gpu, "tb", id=str(len(tbs)), send=str(send),
                                         recv=str(recv), chan="0")
            tb = tbs[key]
            tb_id = int(tb.get("id"))
            depid, deps = -1, -1
            if previous is not None and previous[0] != tb_id:
                depid, deps = previous[0], int(previous[1].get("s"))
                previous[1].set("hasdep", "1")
            step = ET.SubElement(tb, "step", s=str(len(tb)), type=kind,
                                 srcbuf=BUFFER[src[0]], srcoff=str(src[1]),
                                 dstbuf=BUFFER[dst[0]], dstoff=str(dst[1]), cnt="1",
                                 depid=str(depid), deps=str(deps), hasdep="0")
            previous = (tb_id, step)

        for step in entry["steps"]:
            op = step["op"]
            if op == "put":
                emit(step["peer"], -1, "s", step["src"], step["dst"])
            elif op == "wait":
                dst = landing[(step["peer"], r)].popleft()
                emit(-1, step["peer"], "r", dst, dst)
            elif op == "copy":
                emit(-1, -1, "cpy", step["src"], step["dst"])
            elif op == "reduce":
                first, *rest = step["srcs"]
                if first != step["dst"]:
                    emit(-1, -1, "cpy", first, step["dst"])
                for src in rest:
                    emit(-1, -1, "re", src, step["dst"])
    ET.indent(algo)
    return ET.tostring(algo, encoding="unicode") + "\n"
