"""Constructive packing of k spanning out-trees per root on the switch-free graph.

Edmonds' branching theorem: a graph holds k arc-disjoint spanning out-trees rooted at every
compute node iff the flow test passes. Lovász's proof builds them one arc at a time, and that is
what this module does, with trees kept in *batches* of identical trees (a multiplicity).

Growing batch T (multiplicity C) by arc (x, y), x in T and y not, with multiplicity mu is safe
iff every set X with y in X, x not in X still has in-capacity (unused arcs) at least mu more
than the number of other trees that have no vertex in X. That margin is a max-flow: in a
helper graph made of the unused arcs plus, for each other unfinished batch j, a node s_j with
an arc x -> s_j of capacity C_j and infinite arcs s_j -> every vertex of j,
``margin = maxflow(x -> y) - sum of C_j``. Batches still at their root alone reduce to one
arc x -> root; finished batches touch every X and drop out. So
``mu = min(C, unused(x, y), margin)``; if mu < C the batch is split in two and the copy that
does not take (x, y) is grown later. A margin can only shrink while T grows, so an arc found
useless for T is not tried again; the theorem guarantees some arc is always usable.

Arcs are tried breadth first from the root, which keeps trees shallow.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .maxflow import Network
from .network import Arc
from .optimal import ScheduleError

Progress = Optional[Callable[[str, int, int], None]]


@dataclass
class Batch:
    """``multiplicity`` identical trees rooted at ``root``; ``edges`` are
    ``(parent, child, switch path)`` in the order they were added (breadth first)."""

    root: int
    multiplicity: int
    vertices: list[int] = field(default_factory=list)
    edges: list[tuple[int, int, tuple[int, ...]]] = field(default_factory=list)
    head: int = 0  # vertices before this one were already tried as parents

    def copy(self, multiplicity: int) -> "Batch":
        return Batch(self.root, multiplicity, list(self.vertices), list(self.edges), self.head)


def pack_trees(num_ranks: int, caps: dict[Arc, int], segments: dict[Arc, list[list]],
               per_root: int, flow_func: str = "scipy", progress: Progress = None
               ) -> list[Batch]:
    """Pack ``per_root`` spanning out-trees per compute node into ``caps``.

    Parameters
    ----------
    num_ranks : int
        Compute nodes ``0..num_ranks-1``; ``caps`` has arcs between them only.
    caps : dict of (u, v) to int
        Units per logical arc (not modified).
    segments : dict of (u, v) to list of [switch path, count]
        Physical routing of each logical arc's units (not modified). A tree edge takes its
        units from one segment, so it has exactly one switch path.
    per_root : int
        Trees per root k.

    Returns
    -------
    list of Batch
        Complete trees; each root's multiplicities sum to ``per_root``.

    Raises
    ------
    ScheduleError
        If no arc can grow a tree (the input failed the flow test).

    Complexity: one max-flow on a graph of about N + |arcs| nodes/arcs per tree edge added.
    """
    N = num_ranks
    arcs = sorted(caps)
    index = {a: i for i, a in enumerate(arcs)}
    src = np.array([a[0] for a in arcs], dtype=np.int64)
    dst = np.array([a[1] for a in arcs], dtype=np.int64)
    unused = np.array([caps[a] for a in arcs], dtype=np.int64)
    segs = {a: [list(s) for s in segments[a]] for a in arcs}
    succ: dict[int, list[int]] = {x: [] for x in range(N)}
    for x, y in arcs:
        succ[x].append(y)
    waiting = np.full(N, per_root, dtype=np.int64)  # trees still at their root alone
    partial: list[Batch] = []  # started, unfinished batches waiting their turn
    done: list[Batch] = []
    total = N * per_root

    def margin(x: int, y: int) -> int:
        extra_src = [np.full(N, x), np.full(len(partial), x)]
        extra_dst = [np.arange(N), N + np.arange(len(partial))]
        extra_cap = [waiting, np.array([b.multiplicity for b in partial], dtype=np.int64)]
        for j, b in enumerate(partial):
            extra_src.append(np.full(len(b.vertices), N + j))
            extra_dst.append(np.array(b.vertices))
            extra_cap.append(np.full(len(b.vertices), total))
        net = Network(N + len(partial), np.concatenate([src, *extra_src]),
                      np.concatenate([dst, *extra_dst]), np.concatenate([unused, *extra_cap]),
                      flow_func)
        others = int(waiting.sum()) + sum(b.multiplicity for b in partial)
        return net.max_flow(x, y) - others

    for root in range(N):
        waiting[root] = 0
        queue = [Batch(root, per_root, [root])]
        while queue:
            batch = queue.pop()
            partial = [b for b in partial if b is not batch]
            in_tree = set(batch.vertices)
            may_retry = batch.head > 0
            while len(in_tree) < N:
                if batch.head == len(batch.vertices):
                    # A copy skips parents its original had tried; if that leaves it stuck,
                    # try them once more before giving up.
                    if not may_retry:
                        raise ScheduleError(f"tree of root {root} stuck at {len(in_tree)} of "
                                            f"{N} nodes: no arc can extend it")
                    batch.head, may_retry = 0, False
                x = batch.vertices[batch.head]
                batch.head += 1
                for y in succ[x]:
                    i = index[(x, y)]
                    if y in in_tree or unused[i] == 0:
                        continue
                    mu = min(batch.multiplicity, int(unused[i]), margin(x, y))
                    if mu <= 0:
                        continue
                    # One switch path per tree edge: the fullest segment, or the one that
                    # fits mu most tightly, so batches split as little as possible.
                    options = segs[(x, y)]
                    fits = [s for s in options if s[1] >= mu]
                    seg = min(fits, key=lambda s: s[1]) if fits else max(options,
                                                                        key=lambda s: s[1])
                    mu = min(mu, seg[1])
                    if mu < batch.multiplicity:
                        batch.head -= 1  # the copy may still use x's other arcs
                        rest = batch.copy(batch.multiplicity - mu)
                        batch.head += 1
                        partial.append(rest)
                        queue.append(rest)
                        batch.multiplicity = mu
                    seg[1] -= mu
                    if seg[1] == 0:
                        options.remove(seg)
                    path = seg[0]
                    unused[i] -= mu
                    batch.edges.append((x, y, path))
                    batch.vertices.append(y)
                    in_tree.add(y)
            done.append(batch)
        if progress:
            progress("packing trees", root + 1, N)
    return done
