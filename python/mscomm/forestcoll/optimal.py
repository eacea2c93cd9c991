"""The optimal allgather throughput x* and the number of trees per root.

For a set S holding some but not all compute nodes, the |S ∩ compute| shards inside S must all
leave it, so x* = min_S B+(S) / |S ∩ compute| bounds the per-shard rate, where B+(S) is the
bandwidth leaving S. It is found by a Dinkelbach iteration: start from a cut's ratio x, run the
flow test with super-source arcs of capacity x; if some compute node gets less than N·x, the
min cut S that shows it has a smaller ratio, which becomes the next x. Every step strictly
lowers x and there are finitely many cuts, in practice a handful of rounds.

With x* = p/q over integer bandwidths b_e, ``k = p / gcd(p, gcd(b_e))`` trees per root each
carrying rate y = x*/k make every link carry a whole number U·b_e of trees (U = 1/y).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping, Optional

from .network import Arc, IntTopology, network_with_source, out_capacity


class ScheduleError(RuntimeError):
    """An internal invariant of the ForestColl construction failed (a bug, not bad input)."""


@dataclass(frozen=True)
class Optimum:
    """Result of :func:`optimal_throughput`.

    Attributes
    ----------
    x_star : Fraction
        Optimal per-shard rate in GB/s (allgather algbw is N·x*, busbw (N-1)·x*).
    cut : frozenset of int
        Node indices of a binding set S (B+(S) / |S ∩ compute| = x*).
    rounds : int
        Dinkelbach rounds used.
    """

    x_star: Fraction
    cut: frozenset[int]
    rounds: int


def optimal_throughput(net: IntTopology, flow_func: str = "native") -> Optimum:
    """Exact x* (GB/s) and a binding cut.

    Complexity: rounds x N max-flows on the topology plus a super-source.
    """
    n, N = net.num_nodes, net.num_ranks
    # Start from the best single-node cut: a compute node alone must send its shard out.
    egress = [0] * N
    for (u, _), b in net.bw.items():
        if u < N:
            egress[u] += b
    start = min(range(N), key=lambda c: egress[c])
    cut = frozenset([start])
    x = Fraction(out_capacity(net.bw, cut), 1)
    rounds = 0
    while True:
        rounds += 1
        caps = {a: b * x.denominator for a, b in net.bw.items()}
        flow_net = network_with_source(n, N, caps, x.numerator, flow_func)
        for v in range(N):
            value, side = flow_net.min_cut(n, v)
            if value < N * x.numerator:
                break
        else:
            return Optimum(x / net.scale, frozenset(cut), rounds)
        cut = side - {n}
        ranks_in = sum(1 for u in cut if u < N)
        new_x = Fraction(out_capacity(net.bw, cut), ranks_in)
        if new_x >= x:
            raise ScheduleError(f"Dinkelbach step did not decrease x ({x} -> {new_x})")
        x = new_x


def trees_per_root(net: IntTopology, x_star: Fraction) -> tuple[int, Fraction]:
    """Smallest k trees per root making every link hold a whole number of trees at x*.

    Returns
    -------
    k : int
    U : Fraction
        Trees per GB/s: a tree carries rate y = 1/U = x*/k GB/s, link e holds U·b_e trees.
    """
    x = x_star * net.scale
    g = math.gcd(*net.bw.values())
    k = x.numerator // math.gcd(x.numerator, g)
    return k, Fraction(k) / x_star


def tree_capacities(net: IntTopology, U: Fraction) -> dict[Arc, int]:
    """Trees each link can hold at U trees per GB/s: floor(U·b_e); links that hold none are
    dropped."""
    u = U / net.scale
    caps = {a: math.floor(u * b) for a, b in net.bw.items()}
    return {a: c for a, c in caps.items() if c > 0}


def balance_switches(net: IntTopology, caps: Mapping[Arc, int]) -> dict[Arc, int]:
    """Lower the larger side of every switch until its ingress equals its egress.

    Rounding capacities down (fixed-k mode) can unbalance a switch whose links differ; a switch
    can forward only min(ingress, egress). Units are taken from the largest arcs first.
    """
    caps = dict(caps)
    for w in range(net.num_ranks, net.num_nodes):
        ins = [a for a in caps if a[1] == w]
        outs = [a for a in caps if a[0] == w]
        surplus = sum(caps[a] for a in ins) - sum(caps[a] for a in outs)
        side = ins if surplus > 0 else outs
        for _ in range(abs(surplus)):
            biggest = max(side, key=lambda a: caps[a])
            caps[biggest] -= 1
    return {a: c for a, c in caps.items() if c > 0}


def fixed_k(net: IntTopology, k: int, x_star: Fraction, flow_func: str = "native"
            ) -> tuple[Fraction, dict[Arc, int]]:
    """Smallest U (trees per GB/s) for which k trees per root fit in floor(U·b_e) capacities.

    The achieved rate is x = k/U <= x*. Starting at U = k/x*, each failing flow test yields a
    cut S; U jumps to the smallest value at which S's floored capacity covers
    k·|S ∩ compute| (or to the next breakpoint of any link). U = ceil(k·g/x*)/g (g the gcd of
    the bandwidths) makes every floor exact, so the search ends there at the latest.

    Returns
    -------
    U : Fraction
    caps : dict of (u, v) to int
        Trees per link.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    n, N = net.num_nodes, net.num_ranks
    g = math.gcd(*net.bw.values())
    # In scaled units: u = U / scale, capacities floor(u * b).
    u = Fraction(k) / (x_star * net.scale)
    u_max = Fraction(math.ceil(u * g), g)
    while True:
        caps = balance_switches(net, {a: math.floor(u * b) for a, b in net.bw.items()})
        flow_net = network_with_source(n, N, caps, k, flow_func)
        failed: Optional[frozenset[int]] = None
        for v in range(N):
            value, side = flow_net.min_cut(n, v)
            if value < N * k:
                failed = side - {n}
                break
        if failed is None:
            return u * net.scale, caps
        cut_arcs = [b for (a, c), b in net.bw.items() if a in failed and c not in failed]
        need = k * sum(1 for x in failed if x < N)
        nxt = max(Fraction(need, sum(cut_arcs)), _next_breakpoint(u, net.bw.values()))
        while sum(math.floor(nxt * b) for b in cut_arcs) < need:
            nxt = _next_breakpoint(nxt, cut_arcs)
        u = min(nxt, u_max)


def _next_breakpoint(u: Fraction, bws) -> Fraction:
    """Smallest u' > u at which floor(u'·b) grows for some b."""
    return min(Fraction(math.floor(u * b) + 1, b) for b in bws)
