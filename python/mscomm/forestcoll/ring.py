"""Ring baseline: what NCCL-style rings achieve on the same topology.

A ring visits every rank once; each hop is routed along a shortest path of links (through
switches, relaying through other ranks only where the topology offers nothing else). With R
rings each carrying 1/R of the data, every hop of every ring moves data at the same rate r, and
a link crossed by n hops limits r to b/n. Allgather then runs at x = R·r/(N-1) per shard, the
quantity comparable to ForestColl's x*.

Candidate rings go through the ranks host by host, each host's ranks rotated by j (ring j),
either in the same direction in every host or snaking (odd hosts reversed, so a ring leaves a
host and enters the next on the same rail), plus the reverse of each. The best prefix of each
candidate family is reported.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from fractions import Fraction
from itertools import groupby
from typing import Optional

from ..topology import Topology


@dataclass(frozen=True)
class RingResult:
    """Best ring schedule found: per-shard rate ``x`` (GB/s) and the rings (lists of ranks)."""

    x: Fraction
    rings: tuple[tuple[int, ...], ...]


def ring_throughput(topo: Topology, max_rings: Optional[int] = None) -> RingResult:
    """Per-shard allgather rate of the best ring set found (see module docstring)."""
    N = topo.num_ranks
    by_host = [list(group) for _, group in groupby(range(N), key=lambda r: topo.host_of(
        topo.compute[r]))]
    width = max(len(h) for h in by_host)
    max_rings = max_rings or min(2 * width, 16)
    families = []
    for snake in (False, True):
        family = []
        for j in range(width):
            order = []
            for i, host in enumerate(by_host):
                rot = host[j % len(host):] + host[:j % len(host)]
                order += rot[::-1] if snake and i % 2 else rot
            family += [tuple(order), tuple(reversed(order))]
        families.append(family)
    routes: dict[tuple[int, int], list[tuple[str, str]]] = {}
    best = RingResult(Fraction(0), ())
    for family in families:
        for count in range(1, min(max_rings, len(family)) + 1):
            rings = family[:count]
            load: Counter = Counter()
            for ring in rings:
                for u, v in zip(ring, ring[1:] + ring[:1]):
                    if (u, v) not in routes:
                        routes[(u, v)] = _route(topo, u, v)
                    load.update(routes[(u, v)])
            rate = min(topo.links[arc] / n for arc, n in load.items())
            x = count * rate / (N - 1)
            if x > best.x:
                best = RingResult(x, tuple(rings))
    return best


def _route(topo: Topology, u: int, v: int) -> list[tuple[str, str]]:
    """Links of a shortest path from rank u to rank v, preferring paths through switches."""
    src, dst = topo.compute[u], topo.compute[v]
    succ: dict[str, list[str]] = {}
    for a, b in topo.links:
        succ.setdefault(a, []).append(b)
    switches = set(topo.switches)
    for allowed in (switches | {dst}, set(topo.nodes)):
        parent = {src: src}
        queue = deque([src])
        while queue and dst not in parent:
            node = queue.popleft()
            for nxt in succ.get(node, []):
                if nxt in allowed and nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        if dst in parent:
            path = [dst]
            while path[-1] != src:
                path.append(parent[path[-1]])
            path.reverse()
            return list(zip(path, path[1:]))
    raise ValueError(f"no path from {src!r} to {dst!r}")


def ring_plan(topo: Topology, collective: str, max_rings: Optional[int] = None,
              name: Optional[str] = None) -> dict:
    """The ring baseline as a plan (the same format and executor as ForestColl's).

    Each of the R rings gives every root one chain tree: allgather passes the root's chunk
    round the ring, reduce-scatter accumulates the root's chunk from the rank after it round to
    the root. A rank's shard is R chunks, one per ring.

    Raises
    ------
    ValueError
        If a ring hop has to relay through another rank (no switch-only route).
    """
    from .plan import COLLECTIVE_PHASES, plan_from_phases

    if collective not in COLLECTIVE_PHASES:
        raise ValueError(f"collective must be one of {', '.join(COLLECTIVE_PHASES)}, "
                         f"got {collective!r}")
    best = ring_throughput(topo, max_rings)
    compute = set(topo.compute)
    hop_path: dict[tuple[int, int], tuple[str, ...]] = {}
    for ring in best.rings:
        for u, v in zip(ring, ring[1:] + ring[:1]):
            if (u, v) not in hop_path:
                inner = tuple(b for _, b in _route(topo, u, v)[:-1])
                if any(w in compute for w in inner):
                    raise ValueError(f"ring hop {u}->{v} relays through another rank; the ring "
                                     "plan needs switch-only routes")
                hop_path[(u, v)] = inner
    N = topo.num_ranks
    phases = {}
    for phase in COLLECTIVE_PHASES[collective]:
        trees = []
        for ring in best.rings:
            nxt = {u: v for u, v in zip(ring, ring[1:] + ring[:1])}
            prv = {v: u for u, v in nxt.items()}
            for r in range(N):
                if phase == "allgather":
                    parent = {v: prv[v] for v in range(N) if v != r}
                    path = {v: hop_path[(prv[v], v)] for v in parent}
                else:
                    parent = {v: nxt[v] for v in range(N) if v != r}
                    path = {v: hop_path[(v, nxt[v])] for v in parent}
                trees.append((r, 1, parent, path))
        phases[phase] = (best.x, best.x, len(best.rings), trees)
    return plan_from_phases(topo, collective, phases, name=name or f"ring-{collective}")
