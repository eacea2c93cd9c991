"""The result of ForestColl: per-root trees with multiplicities and what they achieve.

Allgather of M bytes (each rank contributes M/N) runs every tree as a broadcast of its root's
share: a tree carries M/(N·k) bytes at rate y = x/k GB/s, so all finish together at
T = M/(N·x). Reduce-scatter is allgather on the *reversed* graph (every link turned round):
its out-trees there are in-trees of the real fabric, with their own optimum x_RS, which equals
x_AG only when every link has an equal reverse. Allreduce is reduce-scatter then allgather:
T = M/N · (1/x_RS + 1/x_AG) (:class:`Collective`). Bus bandwidth follows nccl-tests.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional

from ..topology import Topology
from .optimal import ScheduleError

COLLECTIVES = ("allgather", "reduce_scatter", "allreduce")
PHASES = ("reduce_scatter", "allgather")


def reverse_topology(topo: Topology) -> Topology:
    """The same fabric with every link turned round (reduce-scatter's graph)."""
    return topo.replace(links={(v, u): b for (u, v), b in topo.links.items()})


def is_symmetric(topo: Topology) -> bool:
    """Whether every link has a reverse link of equal bandwidth."""
    return all(topo.links.get((v, u)) == b for (u, v), b in topo.links.items())


@dataclass(frozen=True)
class Tree:
    """``multiplicity`` identical spanning out-trees rooted at rank ``root``.

    ``edges`` are ``(parent rank, child rank, switch names on the way)`` in breadth-first
    order (every parent appears as a child, or is the root, before its own edges).
    """

    root: int
    multiplicity: int
    edges: tuple[tuple[int, int, tuple[str, ...]], ...]

    def depth(self) -> dict[int, int]:
        """Depth of every rank in the tree (the root has 0)."""
        depth = {self.root: 0}
        for parent, child, _ in self.edges:
            depth[child] = depth[parent] + 1
        return depth

    def children(self) -> dict[int, list[int]]:
        """Children of every rank (leaves map to an empty list)."""
        kids: dict[int, list[int]] = {self.root: []}
        for parent, child, _ in self.edges:
            kids[parent].append(child)
            kids[child] = []
        return kids


@dataclass(frozen=True)
class Schedule:
    """Trees that run a collective at rate ``x`` per shard on ``topology``.

    Attributes
    ----------
    topology : Topology
    x : Fraction
        Achieved per-shard rate in GB/s (== ``x_star`` unless ``k`` was fixed).
    x_star : Fraction
        Optimal rate in GB/s.
    k : int
        Trees per root.
    U : Fraction
        Trees per GB/s of link bandwidth: a tree carries 1/U GB/s.
    cut : tuple of str
        Nodes of a binding cut (the set whose out-bandwidth limits x*).
    trees : tuple of Tree
    seconds : dict of str to float
        Generation time of each step.
    direction : {"allgather", "reduce_scatter"}
        "allgather": ``trees`` are out-trees of ``topology``, data flow parent -> child.
        "reduce_scatter": ``topology`` is the *reversed* fabric and ``trees`` its out-trees;
        on the real fabric data flow child -> parent along the reversed switch path.
    """

    topology: Topology
    x: Fraction
    x_star: Fraction
    k: int
    U: Fraction
    cut: tuple[str, ...]
    trees: tuple[Tree, ...]
    seconds: dict = field(default_factory=dict)
    direction: str = "allgather"

    @property
    def num_ranks(self) -> int:
        return self.topology.num_ranks

    @property
    def tree_bandwidth(self) -> Fraction:
        """Rate of one tree, GB/s."""
        return 1 / self.U

    def trees_of(self, root: int) -> list[Tree]:
        """The tree batches rooted at ``root``."""
        return [t for t in self.trees if t.root == root]

    def link_trees(self) -> Counter:
        """Number of trees crossing each physical link ``(src, dst)`` (names)."""
        names = self.topology.compute
        routes: Counter = Counter()  # (parent, child, path) -> trees: few distinct ones
        for tree in self.trees:
            m = tree.multiplicity
            for edge in tree.edges:
                routes[edge] += m
        load: Counter = Counter()
        for (parent, child, path), n in routes.items():
            hops = (names[parent], *path, names[child])
            for arc in zip(hops, hops[1:]):
                load[arc] += n
        return load

    def link_load(self) -> dict[tuple[str, str], Fraction]:
        """Bandwidth (GB/s) each link carries while the schedule runs."""
        return {arc: n / self.U for arc, n in self.link_trees().items()}

    def time(self, collective: str, nbytes: float) -> float:
        """Theoretical seconds for ``collective`` on ``nbytes`` (the full buffer size M)."""
        _check(collective)
        phases = 2 if collective == "allreduce" else 1
        return phases * nbytes / (self.num_ranks * float(self.x) * 1e9)

    def algbw(self, collective: str) -> Fraction:
        """Algorithm bandwidth M/T in GB/s (independent of M in this model)."""
        _check(collective)
        return self.num_ranks * self.x / (2 if collective == "allreduce" else 1)

    def busbw(self, collective: str) -> Fraction:
        """Bus bandwidth in GB/s: (N-1)·x for all three collectives."""
        _check(collective)
        factor = Fraction(2 * (self.num_ranks - 1), self.num_ranks) if collective == \
            "allreduce" else Fraction(self.num_ranks - 1, self.num_ranks)
        return self.algbw(collective) * factor

    def verify(self) -> None:
        """Check the invariants and raise :class:`ScheduleError` naming the first violation.

        Every tree spans all ranks along existing links; each root's multiplicities sum to k;
        every link carries at most its bandwidth; and k trees per root at 1/U each give x.
        """
        topo, N = self.topology, self.num_ranks
        switches = set(topo.switches)
        per_root = Counter()
        checked: set = set()  # (parent, child, path) routes already checked against links
        for tree in self.trees:
            per_root[tree.root] += tree.multiplicity
            reached = {tree.root}
            for edge in tree.edges:
                parent, child, path = edge
                if parent not in reached or child in reached:
                    raise ScheduleError(f"tree of root {tree.root}: edge {parent}->{child} "
                                        "is not a tree edge in breadth-first order")
                reached.add(child)
                if edge in checked:
                    continue
                checked.add(edge)
                hops = (topo.compute[parent], *path, topo.compute[child])
                for arc in zip(hops, hops[1:]):
                    if arc not in topo.links:
                        raise ScheduleError(f"tree of root {tree.root} uses {arc}, not a link")
                if any(w not in switches for w in path):
                    raise ScheduleError(f"tree of root {tree.root}: path {path} leaves the "
                                        "switches")
            if len(reached) != N:
                raise ScheduleError(f"tree of root {tree.root} spans {len(reached)} of {N} ranks")
        for root in range(N):
            if per_root[root] != self.k:
                raise ScheduleError(f"root {root} has {per_root[root]} trees, expected {self.k}")
        for arc, load in self.link_load().items():
            if load > topo.links[arc]:
                raise ScheduleError(f"link {arc[0]} -> {arc[1]} carries {load} GB/s, more "
                                    f"than its {topo.links[arc]} GB/s")
        if self.k / self.U != self.x:
            raise ScheduleError(f"k/U = {self.k / self.U} differs from x = {self.x}")

    def summary(self, collective: str = "allgather", nbytes: Optional[float] = None) -> dict:
        """Plain-JSON summary (what ``mscomm-plan --json`` prints)."""
        out = {
            "topology": self.topology.name, "num_ranks": self.num_ranks,
            "collective": collective,
            "x_star": str(self.x_star), "x_star_gbps": float(self.x_star),
            "x": str(self.x), "x_gbps": float(self.x), "k": self.k, "U": str(self.U),
            "tree_batches": len(self.trees), "binding_cut": list(self.cut),
            "algbw_gbps": float(self.algbw(collective)),
            "busbw_gbps": float(self.busbw(collective)),
            "generation_seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }
        if nbytes is not None:
            out["bytes"] = nbytes
            out["time_s"] = self.time(collective, nbytes)
        return out


@dataclass(frozen=True)
class Collective:
    """The schedules of one collective on ``topology``: its phases in execution order.

    ``phases`` maps "reduce_scatter" and/or "allgather" to a :class:`Schedule` (the
    reduce-scatter one lives on the reversed fabric). Allreduce has both.
    """

    collective: str
    topology: Topology
    phases: dict

    @property
    def num_ranks(self) -> int:
        return self.topology.num_ranks

    def rates(self) -> dict:
        return {name: sched.x for name, sched in self.phases.items()}

    def time(self, nbytes: float) -> float:
        """Theoretical seconds on ``nbytes`` (M): M/N · sum over phases of 1/x."""
        return sum(nbytes / (self.num_ranks * float(x) * 1e9) for x in self.rates().values())

    def x(self) -> Fraction:
        """Per-shard rate of one phase's worth of time: 1 / mean(1/x) over the phases (the
        phase's x for a single-phase collective)."""
        inv = sum(1 / x for x in self.rates().values())
        return len(self.phases) / inv

    def x_star(self) -> Fraction:
        inv = sum(1 / s.x_star for s in self.phases.values())
        return len(self.phases) / inv

    def algbw(self) -> Fraction:
        """M/T in GB/s: N / sum(1/x)."""
        return self.num_ranks / sum(1 / x for x in self.rates().values())

    def busbw(self) -> Fraction:
        N = self.num_ranks
        factor = Fraction(2 * (N - 1), N) if self.collective == "allreduce" else \
            Fraction(N - 1, N)
        return self.algbw() * factor

    def summary(self, nbytes: Optional[float] = None) -> dict:
        out = {"collective": self.collective, "topology": self.topology.name,
               "num_ranks": self.num_ranks, "algbw_gbps": float(self.algbw()),
               "busbw_gbps": float(self.busbw()),
               "phases": {name: {"x_star": str(s.x_star), "x": str(s.x), "k": s.k,
                                 "tree_batches": len(s.trees)}
                          for name, s in self.phases.items()}}
        if nbytes is not None:
            out["bytes"] = nbytes
            out["time_s"] = self.time(nbytes)
        return out


def _check(collective: str) -> None:
    if collective not in COLLECTIVES:
        raise ValueError(f"collective must be one of {', '.join(COLLECTIVES)}, "
                         f"got {collective!r}")
