"""Switch removal by edge splitting, keeping the switch path of every logical link.

Splitting ``γ`` units off a pair of arcs ``(u, w), (w, t)`` at switch ``w`` moves them onto a
logical arc ``(u, t)`` that remembers it runs through ``w``. A split is *admissible* when the
flow test (every compute node can still receive N·k from the super-source) still passes. A
switch whose ingress equals its egress can always be split off completely by admissible splits
(Bang-Jensen, Frank and Jackson 1995), after which trees are packed on compute nodes alone.

Each switch is first offered a *proposal*: a complete splitting that spreads every in-arc over
the out-arcs in proportion to their capacity, never pairing an arc with its reverse and, when
the switch joins several hosts, never pairing two nodes of the same host. Proposals of many
switches that share no arc are applied together and checked by one flow test; a failing group
is halved until single switches remain. A switch whose own proposal fails is split greedily:
for each out-arc ``(w, t)``, in-arcs are tried starting half-way round the switch's list with
the largest γ; a split only lowers cuts, so when the test fails for node v with flow f, the
cut that shows it lost exactly γ and at most ``γ - (N·k - f)`` is admissible, so γ drops by that
deficit and is tried again.

Words: a *segment* is ``[switch path, count]``: ``count`` units of a logical arc that run
through the switches of ``path`` (node indices) in order.
"""
from __future__ import annotations

from typing import Callable, Hashable, Optional, Sequence

from .maxflow import Network
from .network import Arc, flow_test
from .optimal import ScheduleError

Segments = dict[Arc, list[list]]
Progress = Optional[Callable[[str, int, int], None]]
Split = tuple[int, int, int, int]  # (u, w, t, units)


def split_switches(num_nodes: int, num_ranks: int, caps: dict[Arc, int], per_root: int,
                   flow_func: str = "native", progress: Progress = None,
                   hosts: Optional[Sequence[Hashable]] = None) -> tuple[dict[Arc, int], Segments]:
    """Split off every switch of ``caps`` (nodes ``num_ranks..num_nodes-1``).

    Parameters
    ----------
    caps : dict of (u, v) to int
        Trees each arc holds; must pass the flow test with ``per_root``.
    per_root : int
        Trees per root k.
    hosts : sequence, optional
        Host of each compute node (any hashable), used only to make better proposals.

    Returns
    -------
    caps : dict of (u, v) to int
        Logical arcs between compute nodes.
    segments : dict of (u, v) to list of [path, count]
        For each logical arc, how many of its units run through which switch path.

    Raises
    ------
    ScheduleError
        If a switch cannot be split off completely (ingress and egress differ).

    Complexity: one flow test (N max-flows) per accepted group of proposals, and in the
    greedy fallback per admissible split (at most in-degree + out-degree per switch).
    """
    splitter = _Splitter(num_nodes, num_ranks, caps, per_root, flow_func, hosts)
    remaining = set(range(num_ranks, num_nodes))
    total = len(remaining)
    while remaining:
        # Lowest degree first (NICs before fabric switches); a group shares no arc.
        group: list[int] = []
        touched: set[int] = set()
        for w in sorted(remaining, key=lambda w: (splitter.degree(w), w)):
            if w not in touched:
                group.append(w)
                touched |= splitter.succ[w] | splitter.pred[w] | {w}
        splitter.split_group([(w, splitter.propose(w)) for w in group])
        remaining -= set(group)
        if progress:
            progress("splitting switches", total - len(remaining), total)
    return splitter.caps, splitter.segments


class _Splitter:
    def __init__(self, num_nodes: int, num_ranks: int, caps: dict[Arc, int], per_root: int,
                 flow_func: str, hosts: Optional[Sequence[Hashable]]) -> None:
        self.num_nodes, self.num_ranks, self.per_root = num_nodes, num_ranks, per_root
        self.flow_func = flow_func
        self.hosts = list(hosts) if hosts is not None else list(range(num_ranks))
        self.caps = {a: c for a, c in caps.items() if c > 0}
        self.segments: Segments = {a: [[(), c]] for a, c in self.caps.items()}
        self.succ: dict[int, set[int]] = {x: set() for x in range(num_nodes)}
        self.pred: dict[int, set[int]] = {x: set() for x in range(num_nodes)}
        for u, v in self.caps:
            self.succ[u].add(v)
            self.pred[v].add(u)
        self.order = list(range(num_ranks))  # compute nodes, last failure first

    def degree(self, w: int) -> int:
        return len(self.succ[w]) + len(self.pred[w])

    def admissible(self) -> Optional[tuple[int, int]]:
        """None if the flow test passes, else (node, flow) of a failure."""
        return flow_test(self.num_nodes, self.num_ranks, self.caps, self.per_root,
                         self.flow_func, self.order)

    def shift(self, u: int, w: int, t: int, amount: int) -> None:
        """Move ``amount`` units (negative: back) from (u, w) and (w, t) onto (u, t)."""
        for arc, delta in (((u, w), -amount), ((w, t), -amount), ((u, t), amount)):
            if arc[0] == arc[1]:
                continue
            self.caps[arc] = self.caps.get(arc, 0) + delta
            if self.caps[arc] == 0:
                del self.caps[arc]
                self.succ[arc[0]].discard(arc[1])
                self.pred[arc[1]].discard(arc[0])
            else:
                self.succ[arc[0]].add(arc[1])
                self.pred[arc[1]].add(arc[0])

    def propose(self, w: int) -> Optional[list[Split]]:
        """A complete splitting of ``w`` that spreads each in-arc over the out-arcs.

        A switch joining ranks of several hosts is first offered a *sparse* pairing: the
        i-th in-rank of host h may only feed the i-th out-rank (cyclically) of hosts
        h+1, h+2, h+4, ... (host indices mod the number of hosts), so the switch-free graph
        gets about N·log2(hosts) arcs instead of N²/hosts and trees stay shallow. If that
        pairing cannot carry every unit, or is not admissible, all cross-host pairs are
        allowed.
        """
        ins, outs = sorted(self.pred[w]), sorted(self.succ[w])
        group = {x: ("host", self.hosts[x]) if x < self.num_ranks else ("switch", x)
                 for x in ins + outs}
        mixed = len(set(group.values())) > 1
        dense = [(u, t) for u in ins for t in outs
                 if u != t and not (mixed and group[u] == group[t])]
        if not dense:
            return None
        options = []
        sparse = self._sparse_pairs(ins, outs, group) if mixed else None
        if sparse:
            options.append(sparse)
        options.append(dense)
        for allowed in options:
            found = self._transport(w, ins, outs, allowed)
            if found is not None:
                return found
        return None

    def _sparse_pairs(self, ins: list[int], outs: list[int], group: dict):
        hosts = sorted({group[x] for x in ins + outs if group[x][0] == "host"})
        if len(hosts) < 3:
            return None
        index = {h: i for i, h in enumerate(hosts)}
        by_host_out: dict = {}
        for t in outs:
            by_host_out.setdefault(group[t], []).append(t)
        slot_in: dict = {}
        seen: dict = {}
        for u in ins:
            slot_in[u] = seen.get(group[u], 0)
            seen[group[u]] = slot_in[u] + 1
        H = len(hosts)
        offsets, step = [], 1
        while step < H:
            offsets.append(step)
            step *= 2
        pairs = set()
        for u in ins:
            if group[u][0] != "host":
                pairs.update((u, t) for t in outs if t != u and group[t] != group[u])
                continue
            for off in offsets:
                targets = by_host_out.get(hosts[(index[group[u]] + off) % H], [])
                if targets:
                    pairs.add((u, targets[slot_in[u] % len(targets)]))
        for t in outs:  # out-arcs towards switches stay reachable from everyone
            if group[t][0] != "host":
                pairs.update((u, t) for u in ins if u != t and group[u] != group[t])
        return sorted(pairs)

    def _transport(self, w: int, ins: list[int], outs: list[int], allowed):
        a = {u: self.caps[(u, w)] for u in ins}
        b = {t: self.caps[(w, t)] for t in outs}
        reach = {u: 0 for u in ins}
        for u, t in allowed:
            reach[u] += b[t]
        if any(reach[u] == 0 for u in ins):
            return None
        # Bipartite transport: source -> u (a_u) -> t (fair share, then any) -> sink (b_t).
        node = {x: i + 2 for i, x in enumerate(ins)}
        node.update({("t", t): i + 2 + len(ins) for i, t in enumerate(outs)})
        for fair in (True, False):
            src = [0] * len(ins) + [node[u] for u, _ in allowed] + [node[("t", t)] for t in outs]
            dst = [node[u] for u in ins] + [node[("t", t)] for _, t in allowed] + [1] * len(outs)
            mid = [(-(-a[u] * b[t] // reach[u]) if fair else a[u]) for u, t in allowed]
            cap = [a[u] for u in ins] + mid + [b[t] for t in outs]
            net = Network(len(node) + 2, src, dst, cap, self.flow_func)
            flows = net.arc_flows(0, 1)
            if sum(flows.get((0, node[u]), 0) for u in ins) == sum(a.values()):
                return [(u, w, t, f) for u, t in allowed
                        if (f := flows.get((node[u], node[("t", t)]), 0)) > 0]
        return None

    def split_group(self, group: list[tuple[int, Optional[list[Split]]]]) -> None:
        """Apply the proposals of switches sharing no arc; halve the group on failure."""
        splits = [s for _, proposal in group if proposal for s in proposal]
        if all(proposal for _, proposal in group):
            for u, w, t, units in splits:
                self.shift(u, w, t, units)
            if self.admissible() is None:
                for u, w, t, units in splits:
                    _record(self.segments, u, w, t, units)
                return
            for u, w, t, units in splits:
                self.shift(u, w, t, -units)
        if len(group) > 1:
            half = len(group) // 2
            self.split_group(group[:half])
            self.split_group(group[half:])
        else:
            self.split_greedy(group[0][0])

    def split_greedy(self, w: int) -> None:
        """Split ``w`` pair by pair, each time by the largest admissible amount."""
        outs = sorted(self.succ[w])
        for j, t in enumerate(outs):
            ins = sorted(self.pred[w])
            start = (ins.index(t) if t in ins else j) + len(ins) // 2
            tries = [ins[(start + i) % len(ins)] for i in range(len(ins))]
            tries.sort(key=lambda u: u == t)  # the loop last; a stable sort keeps the rotation
            for u in tries:
                gamma = min(self.caps.get((u, w), 0), self.caps.get((w, t), 0))
                while gamma > 0:
                    self.shift(u, w, t, gamma)
                    failure = self.admissible()
                    if failure is None:
                        _record(self.segments, u, w, t, gamma)
                        break
                    self.shift(u, w, t, -gamma)
                    gamma -= self.num_ranks * self.per_root - failure[1]
                if (w, t) not in self.caps:
                    break
            if (w, t) in self.caps:
                raise ScheduleError(f"switch {w}: {self.caps[(w, t)]} units towards node {t} "
                                    "could not be split off")
        if self.pred[w]:
            raise ScheduleError(f"switch {w}: ingress left after splitting off all egress "
                                "(ingress and egress differ)")


def _take(segments: Segments, arc: Arc, amount: int) -> list[list]:
    """Remove ``amount`` units from the front of an arc's segments and return them."""
    taken, queue = [], segments[arc]
    while amount:
        path, count = queue[0]
        use = min(count, amount)
        taken.append([path, use])
        amount -= use
        if use == count:
            queue.pop(0)
        else:
            queue[0][1] -= use
    if not queue:
        del segments[arc]
    return taken


def _record(segments: Segments, u: int, w: int, t: int, amount: int) -> None:
    """Move ``amount`` units of path bookkeeping from (u, w) and (w, t) onto (u, t)."""
    first, second = _take(segments, (u, w), amount), _take(segments, (w, t), amount)
    if u == t:
        return
    queue = segments.setdefault((u, t), [])
    while first:
        use = min(first[0][1], second[0][1])
        path = first[0][0] + (w,) + second[0][0]
        if queue and queue[-1][0] == path:
            queue[-1][1] += use
        else:
            queue.append([path, use])
        for part in (first, second):
            part[0][1] -= use
            if part[0][1] == 0:
                part.pop(0)
