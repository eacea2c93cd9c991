"""Integer view of a topology and the rooted flow test every ForestColl step relies on.

Nodes are numbered: compute nodes ``0..N-1`` (their ranks), then switches. Bandwidths are scaled
by the LCM of their denominators so they become integers. The *flow test* adds a super-source
``s`` with an arc of capacity ``per_root`` to every compute node and asks whether every compute
node ``v`` receives a flow of ``N * per_root`` from ``s``; by max-flow/min-cut this holds iff every
set S holding some but not all compute nodes has out-capacity >= per_root * |S ∩ compute|.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Mapping, Optional

from ..topology import Topology
from .maxflow import Network

Arc = tuple[int, int]


@dataclass(frozen=True)
class IntTopology:
    """A topology with nodes numbered and bandwidths made integer.

    Attributes
    ----------
    topology : Topology
    names : tuple of str
        Node names by index (compute nodes first, in rank order).
    bw : dict of (int, int) to int
        Scaled bandwidth of each link: ``topology bandwidth * scale``.
    scale : int
        LCM of the bandwidth denominators.
    """

    topology: Topology
    names: tuple[str, ...]
    bw: Mapping[Arc, int]
    scale: int

    @classmethod
    def of(cls, topo: Topology) -> "IntTopology":
        names = topo.compute + topo.switches
        index = {name: i for i, name in enumerate(names)}
        scale = math.lcm(*(b.denominator for b in topo.links.values()))
        bw = {(index[u], index[v]): int(b * scale) for (u, v), b in topo.links.items()}
        return cls(topo, names, bw, scale)

    @property
    def num_ranks(self) -> int:
        return self.topology.num_ranks

    @property
    def num_nodes(self) -> int:
        return len(self.names)


def flow_test(num_nodes: int, num_ranks: int, caps: Mapping[Arc, int], per_root: int,
              flow_func: str = "native", order: Optional[list[int]] = None
              ) -> Optional[tuple[int, int]]:
    """Run the rooted flow test.

    Parameters
    ----------
    num_nodes, num_ranks : int
        Nodes ``0..num_nodes-1``, of which ``0..num_ranks-1`` are compute nodes.
    caps : mapping of (u, v) to int
        Arc capacities.
    per_root : int
        Capacity of each super-source arc; the demand is ``num_ranks * per_root``.
    order : list of int, optional
        Compute nodes to try first; the first one that fails is moved to the front, so a
        caller that keeps the list sees failures early.

    Returns
    -------
    None if the test passes, else ``(v, flow)`` for a compute node ``v`` whose max-flow
    ``flow`` falls short of the demand.

    Complexity: one max-flow per compute node in the worst (passing) case.
    """
    net = network_with_source(num_nodes, num_ranks, caps, per_root, flow_func)
    need = num_ranks * per_root
    order = order if order is not None else list(range(num_ranks))
    short = net.first_short_sink(num_nodes, order, need)
    if short is not None:
        order.insert(0, order.pop(order.index(short[0])))
    return short


def network_with_source(num_nodes: int, num_ranks: int, caps: Mapping[Arc, int],
                        per_root: int, flow_func: str = "native") -> Network:
    """The network of ``caps`` plus a super-source (node ``num_nodes``) feeding each compute
    node ``per_root``."""
    src = [u for u, _ in caps] + [num_nodes] * num_ranks
    dst = [v for _, v in caps] + list(range(num_ranks))
    cap = list(caps.values()) + [per_root] * num_ranks
    return Network(num_nodes + 1, src, dst, cap, flow_func)


def out_capacity(caps: Mapping[Arc, int], side: Iterable[int]) -> int:
    """Total capacity of arcs leaving the node set ``side``."""
    side = set(side)
    return sum(c for (u, v), c in caps.items() if u in side and v not in side)


def as_fraction(value: int, scale: int) -> Fraction:
    """A scaled integer back in GB/s."""
    return Fraction(value, scale)
