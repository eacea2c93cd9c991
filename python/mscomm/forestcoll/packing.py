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
    helper_node: int = -1  # its node s_j in the native helper network while it waits

    def copy(self, multiplicity: int) -> "Batch":
        return Batch(self.root, multiplicity, list(self.vertices), list(self.edges), self.head)


def pack_trees(num_ranks: int, caps: dict[Arc, int], segments: dict[Arc, list[list]],
               per_root: int, flow_func: str = "native", progress: Progress = None,
               prune: bool = True, hosts: Optional[list] = None) -> list[Batch]:
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
    prune : bool
        Skip arcs entering a set already shown tight for the batch being grown (the native
        solver always prunes; scipy/networkx only with this flag, which costs a min cut).
    hosts : list, optional
        Host of each rank. When every host has the same number of ranks and shifting every
        rank to the same position of the next host (cyclically) maps ``caps`` onto itself
        (identical boxes), the trees of one root per orbit are packed and mapped to the other
        hosts' roots (see :class:`_Shift`); if a mapped orbit would break the packing
        condition, the remaining roots are packed one by one as usual.

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

    if flow_func == "native":
        helper = _NativeHelper(N, src, dst, unused, waiting)
    else:
        helper = None

    def margin(x: int, y: int, want: int, others: int) -> tuple[int, Optional[np.ndarray]]:
        """(margin, tight set) for arc (x, y); the margin is exact up to ``want`` (larger
        values are reported as ``want``); the tight set (ranks on y's side of a min cut) is
        returned when the margin is <= 0. ``others``: trees waiting or partial."""
        if helper is not None:
            flow, side = helper.query(x, y, others + want)
            value = flow - others
            return min(value, want), (None if value > 0 else side)
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
        if prune:
            value, side = net.min_cut(x, y)
            value -= others
            tight = None
            if value <= 0:
                tight = np.ones(N, dtype=bool)
                tight[[v for v in side if v < N]] = False
            return min(value, want), tight
        return min(net.max_flow(x, y) - others, want), None

    shift = _Shift.of(N, caps, hosts) if hosts is not None else None
    roots = list(range(N)) if shift is None else shift.root_order()
    finished = np.zeros(N, dtype=bool)
    orbit_use: dict = {}  # orbit key -> units the current root's batches use in that orbit
    for root in roots:
        if finished[root]:
            continue
        first_batch = len(done)
        orbit_use = {}
        # Representatives (host 0) leave room for their images and are mapped when done.
        mapping = shift is not None and shift.host_index[root] == 0
        waiting[root] = 0
        if helper is not None:
            helper.set_waiting(root, 0)
        queue = [Batch(root, per_root, [root])]
        while queue:
            batch = queue.pop()
            partial = [b for b in partial if b is not batch]
            if helper is not None and batch.helper_node >= 0:
                helper.retire(batch)
            # Sets X with margin <= 0 found while growing this batch: no arc into X from
            # outside can be added until the batch is done (margins only shrink meanwhile).
            tight: list[np.ndarray] = []
            others = int(waiting.sum()) + sum(b.multiplicity for b in partial)
            in_tree = set(batch.vertices)
            may_retry = batch.head > 0
            while len(in_tree) < N:
                if batch.head == len(batch.vertices) and mapping:
                    # Room left for the orbit's images blocked the tree: grow this root (and
                    # later its orbit) the general way.
                    mapping, batch.head, tight = False, 0, []
                    shift.symmetric = False
                    continue
                if batch.head == len(batch.vertices):
                    # A copy skips parents its original had tried; if that leaves it stuck,
                    # try them once more before giving up.
                    if not may_retry:
                        raise ScheduleError(f"tree of root {root} stuck at {len(in_tree)} of "
                                            f"{N} nodes: no arc can extend it")
                    batch.head, may_retry = 0, False
                x = batch.vertices[batch.head]
                batch.head += 1
                # Heads of arcs from x that enter a tight set not holding x.
                blocked = np.zeros(N, dtype=bool)
                for X in tight:
                    if not X[x]:
                        blocked |= X
                for y in succ[x]:
                    i = index[(x, y)]
                    if y in in_tree or unused[i] == 0 or blocked[y]:
                        continue
                    want = min(batch.multiplicity, int(unused[i]))
                    if mapping:  # leave room for the orbit's images of this arc
                        okey = shift.orbit(x, y)
                        want = min(want, int(unused[i]) - orbit_use.get(okey, 0))
                        if want <= 0:
                            continue
                    mu, cut = margin(x, y, want, others)
                    if mu <= 0:
                        if cut is not None:
                            tight.append(cut)
                            blocked |= cut
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
                        others += rest.multiplicity
                        queue.append(rest)
                        if helper is not None:
                            helper.enlist(rest)
                        batch.multiplicity = mu
                    seg[1] -= mu
                    if seg[1] == 0:
                        options.remove(seg)
                    path = seg[0]
                    unused[i] -= mu
                    if helper is not None:
                        helper.use(i, int(unused[i]))
                    if mapping:
                        orbit_use[okey] = orbit_use.get(okey, 0) + mu
                    batch.edges.append((x, y, path))
                    batch.vertices.append(y)
                    in_tree.add(y)
            done.append(batch)
        finished[root] = True
        if mapping:
            images = shift.images(done[first_batch:], index, unused, segs, waiting, src, dst)
            if images is None:
                # This orbit's other roots are packed one by one (later, as ordinary roots);
                # the state is no longer symmetric, so later checks test every sink.
                shift.symmetric = False
            else:
                for batch in images:
                    done.append(batch)
                    finished[batch.root] = True
                    waiting[batch.root] = 0
                    if helper is not None:
                        helper.set_waiting(batch.root, 0)
                if helper is not None:
                    for i in np.flatnonzero(shift.touched):
                        helper.use(int(i), int(unused[i]))
        if progress:
            progress("packing trees", int(finished.sum()), N)
    return done


class _Shift:
    """The automorphism of identical boxes: rank j of host h -> rank j of host h+1 (hosts in
    order of first appearance, cyclically), checked to map every logical arc onto an arc of
    equal capacity. Ranks of host 0 represent the orbits."""

    def __init__(self, N, host_index, slot, members, H):
        self.N, self.host_index, self.slot, self.members, self.H = N, host_index, slot, \
            members, H
        self.touched = np.zeros(0, dtype=bool)
        self.refusal = ""  # why the last images() returned None
        self.symmetric = True  # every orbit so far was mapped whole

    @classmethod
    def of(cls, N: int, caps: dict, hosts: list) -> Optional["_Shift"]:
        order: dict = {}
        for h in hosts:
            order.setdefault(h, len(order))
        H = len(order)
        if H < 2:
            return None
        members: list[list[int]] = [[] for _ in range(H)]
        host_index, slot = [0] * N, [0] * N
        for r, h in enumerate(hosts):
            host_index[r] = order[h]
            slot[r] = len(members[order[h]])
            members[order[h]].append(r)
        if len({len(m) for m in members}) != 1:
            return None
        shift = cls(N, host_index, slot, members, H)
        for (u, v), c in caps.items():
            if caps.get((shift.move(u, 1), shift.move(v, 1))) != c:
                return None
        return shift

    def move(self, r: int, m: int) -> int:
        return self.members[(self.host_index[r] + m) % self.H][self.slot[r]]

    def orbit(self, u: int, v: int) -> tuple[int, int, int]:
        return (self.slot[u], self.slot[v], (self.host_index[v] - self.host_index[u]) % self.H)

    def root_order(self) -> list[int]:
        return sorted(range(self.N), key=lambda r: (self.host_index[r] != 0, r))

    def images(self, batches: list, index: dict, unused: np.ndarray, segs: dict,
               waiting: np.ndarray, src: np.ndarray, dst: np.ndarray) -> Optional[list]:
        """The batches of one root mapped to the other hosts, with their units taken from
        ``unused``/``segs``; None (and nothing changed) if they do not fit or the remaining
        roots could then not be packed (flow test on one sink per orbit)."""
        N, H = self.N, self.H
        if not hasattr(self, "perm"):
            self.perm = np.array([[self.move(r, m) for r in range(N)] for m in range(H)],
                                 dtype=np.int64)
            self.arc_id = np.full(N * N, -1, dtype=np.int64)
            self.arc_id[src * N + dst] = np.arange(len(src))
        perm, arc_id = self.perm[1:], self.arc_id
        need = np.zeros(len(src), dtype=np.int64)
        mapped = []  # per batch: (ids matrix (H-1, edges), multiplicity)
        for b in batches:
            xs = np.fromiter((e[0] for e in b.edges), dtype=np.int64, count=len(b.edges))
            ys = np.fromiter((e[1] for e in b.edges), dtype=np.int64, count=len(b.edges))
            ids = arc_id[perm[:, xs] * N + perm[:, ys]]
            if (ids < 0).any():
                self.refusal = "an image arc does not exist"
                return None
            np.add.at(need, ids.ravel(), b.multiplicity)
            mapped.append(ids)
        if (need > unused).any():
            self.refusal = "images exceed the unused capacity"
            return None
        arcs_needed = np.flatnonzero(need)
        single: dict[int, tuple] = {}
        multi: dict[int, list] = {}
        for i in arcs_needed.tolist():
            options = segs[(int(src[i]), int(dst[i]))]
            if len(options) == 1:
                if options[0][1] < need[i]:
                    self.refusal = "a switch path lacks units"
                    return None
                single[i] = options[0][0]
            else:
                multi[i] = [list(seg) for seg in options]
        out = []
        for b, ids in zip(batches, mapped):
            mu = b.multiplicity
            verts = np.asarray(b.vertices, dtype=np.int64)
            for m in range(H - 1):
                row = ids[m].tolist()
                paths = []
                for i in row:
                    path = single.get(i)
                    if path is None:  # an arc with several switch paths: pick one that fits
                        options = multi[i]
                        fits = [seg for seg in options if seg[1] >= mu]
                        if not fits:
                            self.refusal = "no switch path fits"
                            return None
                        seg = min(fits, key=lambda seg: seg[1])
                        seg[1] -= mu
                        path = seg[0]
                        if seg[1] == 0:
                            options.remove(seg)
                    paths.append(path)
                root = int(perm[m][b.root])
                out.append(Batch(root, mu, perm[m][verts].tolist(),
                                 list(zip(src[ids[m]].tolist(), dst[ids[m]].tolist(), paths)),
                                 len(b.vertices)))
        left = np.array(waiting)
        for bt in out:
            left[bt.root] = 0
        total = int(left.sum())
        if total:
            after = unused - need
            net = Network(N + 1, np.concatenate([src, np.full(N, N)]),
                          np.concatenate([dst, np.arange(N)]), np.concatenate([after, left]))
            sinks = self.members[0] if self.symmetric else list(range(N))
            if net.first_short_sink(N, sinks, total) is not None:
                self.refusal = "the remaining roots would fail the flow test"
                return None
        for i in arcs_needed.tolist():
            unused[i] -= need[i]
            arc = (int(src[i]), int(dst[i]))
            if i in single:
                segs[arc][0][1] -= int(need[i])
                if segs[arc][0][1] == 0:
                    segs[arc].pop(0)
            else:
                segs[arc] = multi[i]
        self.touched = need > 0
        return out



class _NativeHelper:
    """The margin network kept alive in the C++ core and updated in place.

    Nodes: ranks ``0..N-1``, a hub ``z = N`` and one node ``s_j`` per waiting partial batch.
    Arcs: the unused logical arcs; ``v -> z`` for every rank (capacity 0 except for the source
    of the current query, where it is infinite); ``z -> root_j`` with the number of trees of
    root j not started yet; ``z -> s_j`` with batch j's multiplicity and ``s_j -> v`` (infinite)
    for its vertices. Routing the source through ``z`` gives the same cuts as arcs from the
    source itself, without rebuilding anything per query.
    """

    def __init__(self, N: int, src: np.ndarray, dst: np.ndarray, unused: np.ndarray,
                 waiting: np.ndarray) -> None:
        from .maxflow import native_network

        self.N = N
        self.net = native_network(N + 1)
        self.inf = self.net.INFINITY
        self.arc0 = self.net.add_arcs(src, dst, unused) if src.size else 0
        ranks = np.arange(N, dtype=np.int64)
        self.to_hub = self.net.add_arcs(ranks, np.full(N, N, dtype=np.int64),
                                        np.zeros(N, dtype=np.int64))
        self.to_root = self.net.add_arcs(np.full(N, N, dtype=np.int64), ranks,
                                         waiting.astype(np.int64))
        self.free: list[tuple[int, int]] = []  # (node, hub arc) of retired batches

    def query(self, x: int, y: int, limit: int) -> tuple[int, Optional[np.ndarray]]:
        net = self.net
        net.set_capacity(self.to_hub + x, self.inf)
        flow = net.max_flow(x, y, limit)
        side = None
        if flow < limit:
            side = net.source_side()[:self.N] == 0
        net.set_capacity(self.to_hub + x, 0)
        return int(flow), side

    def set_waiting(self, root: int, count: int) -> None:
        self.net.set_capacity(self.to_root + root, count)

    def use(self, arc_index: int, left: int) -> None:
        self.net.set_capacity(self.arc0 + arc_index, left)

    def enlist(self, batch: Batch) -> None:
        node = self.net.add_node()
        hub_arc = self.net.add_arc(self.N, node, batch.multiplicity)
        verts = np.asarray(batch.vertices, dtype=np.int64)
        self.net.add_arcs(np.full(verts.size, node, dtype=np.int64), verts,
                          np.full(verts.size, self.inf, dtype=np.int64))
        batch.helper_node = hub_arc

    def retire(self, batch: Batch) -> None:
        self.net.set_capacity(batch.helper_node, 0)
        batch.helper_node = -1
