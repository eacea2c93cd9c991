"""Switch removal by edge splitting, keeping the switch path of every logical link.

Splitting ``γ`` units off a pair of arcs ``(u, w), (w, t)`` at switch ``w`` moves them onto a
logical arc ``(u, t)`` that remembers it runs through ``w``. A split is *admissible* when the
flow test (every compute node can still receive N·k from the super-source) still passes; a split
only lowers cuts, so admissibility is monotone in γ. When a test fails for node v with flow f,
the cut that shows it lost exactly γ, so no more than ``γ - (N·k - f)`` is admissible: γ is cut
by that deficit and tried again, which finds the largest admissible γ in a few tests.

A switch whose ingress equals its egress can always be split off completely while the test
keeps passing (Bang-Jensen, Frank and Jackson 1995), so after all switches are done the
trees can be packed on compute nodes alone. Switches are processed from the fewest arcs up
(NICs before fabric switches); for each out-arc, in-arcs are tried starting half-way round the
switch's list, which spreads traffic and keeps loops ``u -> w -> u`` for last.

Words: a *segment* is ``[switch path, count]``: ``count`` units of a logical arc that run
through the switches of ``path`` (node indices) in order.
"""
from __future__ import annotations

from typing import Callable, Optional

from .network import Arc, flow_test
from .optimal import ScheduleError

Segments = dict[Arc, list[list]]
Progress = Optional[Callable[[str, int, int], None]]


def split_switches(num_nodes: int, num_ranks: int, caps: dict[Arc, int], per_root: int,
                   flow_func: str = "scipy", progress: Progress = None
                   ) -> tuple[dict[Arc, int], Segments]:
    """Split off every switch of ``caps`` (nodes ``num_ranks..num_nodes-1``).

    Parameters
    ----------
    caps : dict of (u, v) to int
        Trees each arc holds; must pass the flow test with ``per_root``.
    per_root : int
        Trees per root k.

    Returns
    -------
    caps : dict of (u, v) to int
        Logical arcs between compute nodes.
    segments : dict of (u, v) to list of [path, count]
        For each logical arc, how many of its units run through which switch path.

    Raises
    ------
    ScheduleError
        If a switch cannot be split off completely (a switch with unequal ingress and egress).

    Complexity: one flow test (N max-flows) per admissible split plus about one max-flow per
    rejected try; at most in-degree + out-degree admissible splits per switch.
    """
    caps = {a: c for a, c in caps.items() if c > 0}
    segments: Segments = {a: [[(), c]] for a, c in caps.items()}
    succ: dict[int, set[int]] = {x: set() for x in range(num_nodes)}
    pred: dict[int, set[int]] = {x: set() for x in range(num_nodes)}
    for u, v in caps:
        succ[u].add(v)
        pred[v].add(u)
    order = list(range(num_ranks))
    switches = sorted(range(num_ranks, num_nodes), key=lambda w: (len(succ[w]) + len(pred[w]), w))

    for done, w in enumerate(switches):
        outs = sorted(succ[w])
        for j, t in enumerate(outs):
            ins = sorted(pred[w])
            start = (ins.index(t) if t in ins else j) + len(ins) // 2
            tries = [ins[(start + i) % len(ins)] for i in range(len(ins))] if ins else []
            tries.sort(key=lambda u: u == t)  # the loop last; stable keeps the rotation
            for u in tries:
                gamma = min(caps.get((u, w), 0), caps.get((w, t), 0))
                while gamma > 0:
                    _shift(caps, succ, pred, u, w, t, gamma)
                    failure = flow_test(num_nodes, num_ranks, caps, per_root, flow_func, order)
                    if failure is None:
                        _record(segments, u, w, t, gamma)
                        break
                    _shift(caps, succ, pred, u, w, t, -gamma)
                    gamma -= num_ranks * per_root - failure[1]
                if (w, t) not in caps:
                    break
            if (w, t) in caps:
                raise ScheduleError(f"switch {w}: {caps[(w, t)]} units towards node {t} could "
                                    "not be split off")
        if pred[w]:
            raise ScheduleError(f"switch {w}: ingress left after splitting off all egress "
                                "(ingress and egress differ)")
        if progress:
            progress("splitting switches", done + 1, len(switches))
    return caps, segments


def _shift(caps: dict[Arc, int], succ, pred, u: int, w: int, t: int, amount: int) -> None:
    """Move ``amount`` units (negative: back) from (u, w) and (w, t) onto (u, t)."""
    for arc, delta in (((u, w), -amount), ((w, t), -amount), ((u, t), amount)):
        if arc[0] == arc[1]:
            continue
        caps[arc] = caps.get(arc, 0) + delta
        if caps[arc] == 0:
            del caps[arc]
            succ[arc[0]].discard(arc[1])
            pred[arc[1]].discard(arc[0])
        else:
            succ[arc[0]].add(arc[1])
            pred[arc[1]].add(arc[0])


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
