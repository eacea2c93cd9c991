"""A small simulator of MSCCL <algo> XML: runs every GPU's threadblocks on symbolic chunks.

A threadblock runs its steps in order; a step waits for its dependency (depid, deps) and a
receive for the matching send on the same (sender, receiver, channel) connection (FIFO). It
reports the final buffers and how many rounds ran more than one threadblock of a GPU at once.
"""
from __future__ import annotations

from collections import Counter, defaultdict, deque
from xml.etree import ElementTree as ET


class SimError(AssertionError):
    pass


def simulate(xml: str):
    algo = ET.fromstring(xml)
    gpus = {}
    data = {}
    for gpu in algo.iter("gpu"):
        g = int(gpu.get("id"))
        for i in range(int(gpu.get("i_chunks"))):
            data[(g, "i", i)] = Counter({(g, i): 1})
        gpus[g] = [(tb, tb.findall("step")) for tb in gpu.findall("tb")]
    pc = {(g, t): 0 for g, tbs in gpus.items() for t in range(len(tbs))}
    fifo = defaultdict(deque)
    parallel_rounds = 0
    while True:
        moved = []
        for g, tbs in gpus.items():
            for t, (tb, steps) in enumerate(tbs):
                if pc[(g, t)] >= len(steps):
                    continue
                step = steps[pc[(g, t)]]
                dep = int(step.get("depid"))
                if dep >= 0 and pc[(g, dep)] <= int(step.get("deps")):
                    continue
                kind = step.get("type")
                src = (g, step.get("srcbuf"), int(step.get("srcoff")))
                dst = (g, step.get("dstbuf"), int(step.get("dstoff")))
                chan = tb.get("chan")
                if kind == "r":
                    q = fifo[(int(tb.get("recv")), g, chan)]
                    if not q:
                        continue
                moved.append((g, t, kind, src, dst, tb, chan))
        if not moved:
            break
        if len(moved) > len({m[0] for m in moved}):
            parallel_rounds += 1
        for g, t, kind, src, dst, tb, chan in moved:
            if kind == "s":
                if src not in data:
                    raise SimError(f"gpu {g} sends {src} before it is written")
                fifo[(g, int(tb.get("send")), chan)].append(Counter(data[src]))
            elif kind == "r":
                data[dst] = fifo[(int(tb.get("recv")), g, chan)].popleft()
            elif kind == "cpy":
                data[dst] = Counter(data[src])
            elif kind == "re":
                if src not in data or dst not in data:
                    raise SimError(f"gpu {g} reduces unwritten chunk")
                data[dst] = data[dst] + data[src]
            pc[(g, t)] += 1
    stuck = [(g, t) for (g, t), p in pc.items() if p < len(gpus[g][t][1])]
    if stuck:
        raise SimError(f"deadlock: {len(stuck)} threadblocks blocked, e.g. {stuck[:3]}")
    if any(fifo.values()):
        raise SimError("sends left unreceived")
    return data, parallel_rounds
