"""ForestColl: throughput-optimal collective schedules for any topology.

Steps, one module each: :mod:`.optimal` finds the optimal rate x* and trees per root k,
:mod:`.splitting` removes switches by edge splitting, :mod:`.packing` packs spanning trees on
the result, :mod:`.schedule` holds the trees mapped back to physical links, :mod:`.plan` and
:mod:`.msccl` write them out, :mod:`.ring` is the ring baseline. See docs/forestcoll.md.

>>> from mscomm.topology import zoo
>>> schedule = generate(zoo.star(4, bw=12))
>>> schedule.x_star, schedule.k
(Fraction(4, 1), 1)
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from ..topology import Topology
from .network import IntTopology
from .optimal import ScheduleError, fixed_k, optimal_throughput, tree_capacities, trees_per_root
from .packing import pack_trees
from .schedule import (COLLECTIVES, Collective, Schedule, Tree, is_symmetric,
                       reverse_topology)
from .splitting import split_switches

__all__ = ["generate", "generate_collective", "Collective", "Schedule", "Tree", "ScheduleError",
           "COLLECTIVES"]


def generate_collective(topology: Topology, collective: str = "allreduce",
                        k: Optional[int] = None, flow_func: str = "native",
                        progress: Optional[Callable[[str, int, int], None]] = None,
                        verify: bool = True) -> Collective:
    """The phases of ``collective``: reduce-scatter trees on the reversed fabric (own optimum)
    and/or allgather trees. On a fabric where every link has an equal reverse the
    reduce-scatter schedule is the allgather one (the reversed graph is the same graph), so it
    is generated once.
    """
    if collective not in COLLECTIVES:
        raise ValueError(f"collective must be one of {', '.join(COLLECTIVES)}, "
                         f"got {collective!r}")
    names = {"allgather": ["allgather"], "reduce_scatter": ["reduce_scatter"],
             "allreduce": ["reduce_scatter", "allgather"]}[collective]
    phases: dict = {}
    for name in names:
        if name == "reduce_scatter" and is_symmetric(topology):
            ag = phases.get("allgather") or generate(topology, k, flow_func, progress, verify)
            phases[name] = Schedule(topology, ag.x, ag.x_star, ag.k, ag.U, ag.cut, ag.trees,
                                    dict(ag.seconds), direction="reduce_scatter")
            if collective == "allreduce":
                phases["allgather"] = ag
                break
        else:
            phases[name] = generate(topology, k, flow_func, progress, verify, direction=name)
    return Collective(collective, topology, {n: phases[n] for n in names})


def generate(topology: Topology, k: Optional[int] = None, flow_func: str = "native",
             progress: Optional[Callable[[str, int, int], None]] = None,
             verify: bool = True, direction: str = "allgather",
             symmetry: bool = True) -> Schedule:
    """Throughput-optimal trees for allgather / reduce-scatter / allreduce on ``topology``.

    Parameters
    ----------
    topology : Topology
    k : int, optional
        Trees per root. Default: the smallest k that reaches x* exactly. A given k gives the
        best rate k/U achievable with k trees per root (possibly below x*).
    flow_func : {"native", "scipy", "networkx"}
        Max-flow solver.
    progress : callable, optional
        Called as ``progress(step, done, total)`` during long steps.
    verify : bool
        Check the schedule's invariants before returning it.
    direction : {"allgather", "reduce_scatter"}
        "reduce_scatter" builds the trees on the reversed fabric (see :class:`Schedule`).
    symmetry : bool
        Pack one root per orbit of identical boxes and map the rest (general path as
        fallback; see :func:`~mscomm.forestcoll.packing.pack_trees`).

    Returns
    -------
    Schedule

    Raises
    ------
    ScheduleError
        If an internal invariant fails (a bug).
    """
    if direction not in ("allgather", "reduce_scatter"):
        raise ValueError(f"direction must be 'allgather' or 'reduce_scatter', got {direction!r}")
    if direction == "reduce_scatter":
        topology = reverse_topology(topology)
    seconds = {}
    clock = time.perf_counter()
    net = IntTopology.of(topology)
    if progress:  # one step: the bar shows the elapsed time of a long optimum search
        progress("optimal throughput", 0, 1)
    best = optimal_throughput(net, flow_func)
    if k is None:
        k, U = trees_per_root(net, best.x_star)
        caps = tree_capacities(net, U)
    else:
        U, caps = fixed_k(net, k, best.x_star, flow_func)
    if progress:
        progress("optimal throughput", 1, 1)
    seconds["optimal"] = time.perf_counter() - clock
    clock = time.perf_counter()
    hosts = [topology.hosts.get(c, ("alone", i)) for i, c in enumerate(topology.compute)]
    logical, segments = split_switches(net.num_nodes, net.num_ranks, caps, k, flow_func,
                                       progress, hosts)
    seconds["splitting"] = time.perf_counter() - clock
    clock = time.perf_counter()
    batches = pack_trees(net.num_ranks, logical, segments, k, flow_func, progress,
                         hosts=hosts if symmetry else None)
    seconds["packing"] = time.perf_counter() - clock
    names = net.names
    trees = tuple(Tree(b.root, b.multiplicity,
                       tuple((x, y, tuple(names[w] for w in path)) for x, y, path in b.edges))
                  for b in sorted(batches, key=lambda b: b.root))
    cut = tuple(names[i] for i in sorted(best.cut))
    schedule = Schedule(topology, k / U, best.x_star, k, U, cut, trees, seconds, direction)
    if verify:
        clock = time.perf_counter()
        schedule.verify()
        seconds["verify"] = time.perf_counter() - clock
    seconds["total"] = sum(seconds.values())
    return schedule
