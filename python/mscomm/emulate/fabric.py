"""From a topology to the network that emulates it: hosts, bridges and shaped cables.

Words used here:

- *host region*: the compute nodes of one host plus the switches that serve only that host (an
  NVSwitch, a shared-memory hub, a PCIe switch behind it). Traffic inside a region never touches
  the emulated network: ranks of one host talk through shared memory.
- *fabric switch*: every other switch (it joins two or more hosts). Each becomes one Linux bridge.
- *cable*: a veth pair joining a host to a fabric switch, two fabric switches, or two hosts
  directly. Each end shapes what it sends (``tc tbf``) to the topology's bandwidth in that
  direction times ``scale``; a host's cable carries the sum of the links leaving (entering) its
  region.

All bridges form one Ethernet segment with one IPv4 subnet, so no routing is needed; that needs
each host to have exactly one cable and the cables to form a tree (no loops in an Ethernet
without spanning tree). Topologies outside this shape are refused with a message naming why.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from mscomm.errors import MscommError
from mscomm.topology.model import Topology

SUBNET = "10.231.0"
BYTES_PER_GB = 10**9


class EmulationError(MscommError, RuntimeError):
    """The emulated fabric cannot be built or run (not root, tools missing, unsupported shape)."""


@dataclass(frozen=True)
class Host:
    """One emulated host: a network namespace holding the ranks of one box."""

    index: int
    ranks: tuple[int, ...]
    address: str


@dataclass(frozen=True)
class Cable:
    """A shaped veth pair between two fabric nodes ("h3" a host, "s1" a fabric switch).

    ``rate_ab`` is what end ``a`` may send towards ``b``, in bytes per second (already scaled);
    ``nominal_ab`` the topology's bandwidth in GB/s.
    """

    a: str
    b: str
    nominal_ab: Fraction
    nominal_ba: Fraction
    rate_ab: float
    rate_ba: float


@dataclass(frozen=True)
class Fabric:
    """Everything needed to build the emulated network for one topology and scale."""

    topology: Topology
    scale: float
    hosts: tuple[Host, ...]
    switches: tuple[str, ...]  # fabric switch names; "s<i>" is switches[i]
    cables: tuple[Cable, ...]
    region_of: dict[str, int] = field(default_factory=dict)

    def host_of_rank(self, rank: int) -> Host:
        for h in self.hosts:
            if rank in h.ranks:
                return h
        raise KeyError(rank)

    def path(self, src: int, dst: int) -> list[tuple[Cable, bool]]:
        """The cables from host ``src`` to host ``dst``, each with True when it is crossed from a to b."""
        adj: dict[str, list[tuple[str, Cable]]] = {}
        for c in self.cables:
            adj.setdefault(c.a, []).append((c.b, c))
            adj.setdefault(c.b, []).append((c.a, c))
        start, goal = f"h{src}", f"h{dst}"
        prev: dict[str, tuple[str, Cable] | None] = {start: None}
        stack = [start]
        while stack:
            node = stack.pop()
            for nxt, c in adj.get(node, []):
                if nxt not in prev:
                    prev[nxt] = (node, c)
                    stack.append(nxt)
        out, node = [], goal
        while prev.get(node) is not None:
            back, c = prev[node]  # type: ignore[misc]
            out.append((c, c.a == back))
            node = back
        return list(reversed(out))

    def path_rate(self, src: int, dst: int) -> tuple[float, Fraction]:
        """Shaped rate (bytes/s) and nominal bandwidth (GB/s) of the slowest cable from src to dst."""
        hops = self.path(src, dst)
        rate = min(c.rate_ab if fwd else c.rate_ba for c, fwd in hops)
        nominal = min(c.nominal_ab if fwd else c.nominal_ba for c, fwd in hops)
        return rate, nominal


def host_regions(topo: Topology) -> dict[str, int]:
    """The host each node belongs to; fabric switches are absent.

    A switch belongs to host h when the compute nodes next to it are all of host h (and there is at
    least one), or when it has none and every switch next to it belongs to h.
    """
    neighbours: dict[str, set[str]] = {n: set() for n in topo.nodes}
    for u, v in topo.links:
        neighbours[u].add(v)
        neighbours[v].add(u)
    region = {c: topo.host_of(c) for c in topo.compute}
    compute = set(topo.compute)
    for w in topo.switches:
        hosts = {region[n] for n in neighbours[w] if n in compute}
        if len(hosts) == 1:
            region[w] = hosts.pop()
    changed = True
    while changed:
        changed = False
        for w in topo.switches:
            if w in region or neighbours[w] & compute:
                continue
            owners = {region.get(n) for n in neighbours[w]}
            if len(owners) == 1 and None not in owners:
                region[w] = owners.pop()
                changed = True
    return region


def plan_fabric(topo: Topology, scale: float) -> Fabric:
    """The emulated network of ``topo`` with every bandwidth multiplied by ``scale``.

    Raises
    ------
    EmulationError
        If the topology has a host with cables to two different places, a loop of cables, or a
        link without a reverse direction (TCP needs both).
    """
    if not scale > 0:
        raise EmulationError(f"--scale must be positive, got {scale}")
    region = host_regions(topo)
    host_ids = sorted({region[c] for c in topo.compute})
    index = {h: i for i, h in enumerate(host_ids)}
    fabric_switches = tuple(w for w in topo.switches if w not in region)

    def node(n: str) -> str:
        return f"h{index[region[n]]}" if n in region else f"s{fabric_switches.index(n)}"

    bw: dict[tuple[str, str], Fraction] = {}
    for (u, v), b in topo.links.items():
        a, z = node(u), node(v)
        if a != z:
            bw[(a, z)] = bw.get((a, z), Fraction(0)) + b
    cables, attached = [], {}
    for a, z in sorted(bw):
        if (a, z) > (z, a) and (z, a) in bw:
            continue
        back = bw.get((z, a))
        if back is None:
            raise EmulationError(f"topology {topo.name!r}: traffic can go {a} -> {z} but not back; "
                                 "the emulation needs links in both directions (TCP sends acknowledgements)")
        for end, other in ((a, z), (z, a)):
            if end.startswith("h"):
                if end in attached and attached[end] != other:
                    raise EmulationError(
                        f"topology {topo.name!r}: host {end[1:]} has cables to both "
                        f"{_label(attached[end], fabric_switches)} and {_label(other, fabric_switches)}; "
                        "the emulation gives each host one network attachment (one address, no routing)")
                attached[end] = other
        cables.append(Cable(a, z, bw[(a, z)], back, float(bw[(a, z)]) * BYTES_PER_GB * scale,
                            float(back) * BYTES_PER_GB * scale))
    _check_tree(topo.name, [f"h{i}" for i in range(len(host_ids))] + [f"s{i}" for i in range(len(fabric_switches))],
                cables, fabric_switches)
    if len(host_ids) > 250:
        raise EmulationError(f"topology {topo.name!r}: {len(host_ids)} hosts; the emulation addresses at most 250")
    hosts = tuple(Host(i, tuple(r for r, c in enumerate(topo.compute) if region[c] == h), f"{SUBNET}.{i + 1}")
                  for i, h in enumerate(host_ids))
    return Fabric(topo, scale, hosts, fabric_switches, tuple(cables), region)


def _label(node: str, switches: tuple[str, ...]) -> str:
    return f"host {node[1:]}" if node.startswith("h") else f"switch {switches[int(node[1:])]!r}"


def _check_tree(name: str, nodes: list[str], cables: list[Cable], switches: tuple[str, ...]) -> None:
    parent = {n: n for n in nodes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for c in cables:
        ra, rb = find(c.a), find(c.b)
        if ra == rb:
            raise EmulationError(f"topology {name!r}: the cables between {_label(c.a, switches)} and "
                                 f"{_label(c.b, switches)} close a loop; the emulation builds one Ethernet "
                                 "segment and needs the fabric switches and hosts to form a tree")
        parent[ra] = rb
