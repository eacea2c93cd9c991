"""The topology model: compute nodes, switch nodes and directed links with exact bandwidths.

Words used throughout:

- *compute node*: a rank (GPU, GCD, CPU process). Compute nodes send, receive and reduce.
- *switch node*: anything that only forwards (NVSwitch, NIC, IB/Ethernet switch, a host's shared
  memory). A switch neither reduces nor multicasts, and what enters it must leave it, so its
  total ingress bandwidth must equal its total egress bandwidth.
- *link*: a directed arc ``(src, dst)`` with bandwidth in GB/s held as a :class:`~fractions.Fraction`
  (12.5 GB/s is exact). A full-duplex cable is two links.

Compute nodes are ranks ``0..N-1`` in the order they are listed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable, Mapping

from .errors import TopologyError

Link = tuple[str, str]


@dataclass(frozen=True)
class Topology:
    """A network of compute and switch nodes joined by directed links.

    Parameters
    ----------
    name : str
        Short name, used in plans and reports.
    compute : tuple of str
        Compute node names; the position of a name is its rank.
    switches : tuple of str
        Switch node names.
    links : mapping of (src, dst) to Fraction
        Bandwidth of each directed link in GB/s. Parallel links are given summed.
    hosts : mapping of str to int, optional
        Host (box) index of each compute node; compute nodes without one are hosts of their own.
    kinds : mapping of str to str, optional
        Free-form kind of each switch ("nvswitch", "nic", "ib", ...), used only for display.
    description : str
        One line saying what the topology models.

    Raises
    ------
    TopologyError
        On construction, if the topology is invalid (see :meth:`validate`).
    """

    name: str
    compute: tuple[str, ...]
    switches: tuple[str, ...]
    links: Mapping[Link, Fraction]
    hosts: Mapping[str, int] = field(default_factory=dict)
    kinds: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "compute", tuple(self.compute))
        object.__setattr__(self, "switches", tuple(self.switches))
        object.__setattr__(self, "links", {k: Fraction(v) for k, v in self.links.items()})
        self.validate()

    @property
    def num_ranks(self) -> int:
        """Number of compute nodes N."""
        return len(self.compute)

    @property
    def nodes(self) -> tuple[str, ...]:
        """All node names: compute nodes first, then switches."""
        return self.compute + self.switches

    def rank(self, name: str) -> int:
        """Rank of compute node ``name``."""
        return self.compute.index(name)

    def host_of(self, name: str) -> int:
        """Host index of a compute node (its rank offset past all hosts when none is given)."""
        return self.hosts.get(name, max(self.hosts.values(), default=-1) + 1 + self.rank(name))

    def egress(self, node: str) -> Fraction:
        """Total bandwidth of links leaving ``node``."""
        return sum((b for (u, _), b in self.links.items() if u == node), Fraction(0))

    def ingress(self, node: str) -> Fraction:
        """Total bandwidth of links entering ``node``."""
        return sum((b for (_, v), b in self.links.items() if v == node), Fraction(0))

    def validate(self) -> None:
        """Check the topology and raise :class:`TopologyError` naming the first problem found.

        Checks: at least two compute nodes; unique names; links between known nodes with
        positive bandwidth and no self-loops; every switch forwards exactly what it receives
        (ingress == egress); every compute node reaches and is reached by every other one.
        """
        if len(self.compute) < 2:
            raise TopologyError(f"topology {self.name!r}: needs at least 2 compute nodes, "
                                f"got {len(self.compute)}")
        seen: set[str] = set()
        for node in self.nodes:
            if not isinstance(node, str) or not node:
                raise TopologyError(f"topology {self.name!r}: node names must be non-empty "
                                    f"strings, got {node!r}")
            if node in seen:
                raise TopologyError(f"topology {self.name!r}: node {node!r} is listed twice")
            seen.add(node)
        for (u, v), bw in self.links.items():
            for end in (u, v):
                if end not in seen:
                    raise TopologyError(f"link {u!r} -> {v!r}: unknown node {end!r}")
            if u == v:
                raise TopologyError(f"link {u!r} -> {v!r}: a link must join two different nodes")
            if bw <= 0:
                raise TopologyError(f"link {u!r} -> {v!r}: bandwidth must be positive, "
                                    f"got {_gbps(bw)}")
        for node in self.hosts:
            if node not in self.compute:
                raise TopologyError(f"host given for {node!r}, which is not a compute node")
        out_bw: dict[str, Fraction] = {n: Fraction(0) for n in self.nodes}
        in_bw: dict[str, Fraction] = dict(out_bw)
        succ: dict[str, list[str]] = {n: [] for n in self.nodes}
        pred: dict[str, list[str]] = {n: [] for n in self.nodes}
        for (u, v), bw in self.links.items():
            out_bw[u] += bw
            in_bw[v] += bw
            succ[u].append(v)
            pred[v].append(u)
        for w in self.switches:
            if in_bw[w] != out_bw[w]:
                raise TopologyError(
                    f"switch {w!r}: ingress {_gbps(in_bw[w])} != egress {_gbps(out_bw[w])}; "
                    "a switch only forwards, so both must be equal")
        first = self.compute[0]
        for adjacency, phrase in ((succ, "cannot be reached from"), (pred, "cannot reach")):
            seen_from = _reachable(first, adjacency)
            for node in self.compute[1:]:
                if node not in seen_from:
                    raise TopologyError(f"compute node {node!r} {phrase} compute node "
                                        f"{first!r}: no path of links joins them")

    def replace(self, **changes: object) -> "Topology":
        """A copy with some fields changed (validated again)."""
        fields = dict(name=self.name, compute=self.compute, switches=self.switches,
                      links=self.links, hosts=self.hosts, kinds=self.kinds,
                      description=self.description)
        fields.update(changes)
        return Topology(**fields)  # type: ignore[arg-type]


def _reachable(start: str, adjacency: Mapping[str, Iterable[str]]) -> set[str]:
    seen, stack = {start}, [start]
    while stack:
        for nxt in adjacency[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _gbps(bw: Fraction) -> str:
    return f"{bw} GB/s" if bw.denominator == 1 else f"{bw} GB/s (= {float(bw):g})"
