"""Shared strategies and oracles for the ForestColl tests."""
from __future__ import annotations

import itertools
from fractions import Fraction

from hypothesis import strategies as st

from mscomm.topology import Topology

BANDWIDTHS = [Fraction(1), Fraction(2), Fraction(3), Fraction(5, 2), Fraction(25, 2)]


@st.composite
def small_topologies(draw, max_compute: int = 5, max_switches: int = 2) -> Topology:
    """Random valid topologies: a one-way cycle through the compute nodes keeps them strongly
    connected; extra one-way arcs between compute nodes and duplex cables to switches (which
    keep every switch balanced) vary the cuts."""
    nc = draw(st.integers(2, max_compute))
    ns = draw(st.integers(0, max_switches))
    compute = [f"c{i}" for i in range(nc)]
    switches = [f"s{i}" for i in range(ns)]
    bw = st.sampled_from(BANDWIDTHS)
    links: dict = {}

    def add(u, v, b):
        links[(u, v)] = links.get((u, v), Fraction(0)) + b

    for i in range(nc):
        add(compute[i], compute[(i + 1) % nc], draw(bw))
    for u, v in draw(st.lists(st.tuples(st.sampled_from(compute), st.sampled_from(compute)),
                              max_size=4)):
        if u != v:
            add(u, v, draw(bw))
    nodes = compute + switches
    for w in switches:
        for peer in draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=4, unique=True)):
            if peer != w:
                b = draw(bw)
                add(w, peer, b)
                add(peer, w, b)
    # A switch cabled only to itself was skipped above: give it one cable.
    for w in switches:
        if not any(w in arc for arc in links):
            add(w, compute[0], Fraction(1))
            add(compute[0], w, Fraction(1))
    return Topology("random", tuple(compute), tuple(switches), links)


def brute_force_x_star(topo: Topology) -> Fraction:
    """min over node sets S holding some but not all compute nodes of B+(S) / |S ∩ compute|."""
    nodes, compute = topo.nodes, set(topo.compute)
    best = None
    for r in range(1, len(nodes)):
        for subset in itertools.combinations(nodes, r):
            inside = set(subset)
            ranks = len(inside & compute)
            if ranks == 0 or ranks == len(compute):
                continue
            out = sum((b for (u, v), b in topo.links.items() if u in inside and v not in inside),
                      Fraction(0))
            ratio = out / ranks
            best = ratio if best is None or ratio < best else best
    return best
