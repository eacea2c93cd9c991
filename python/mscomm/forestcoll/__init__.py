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
from .schedule import COLLECTIVES, Schedule, Tree
from .splitting import split_switches

__all__ = ["generate", "Schedule", "Tree", "ScheduleError", "COLLECTIVES"]


def generate(topology: Topology, k: Optional[int] = None, flow_func: str = "native",
             progress: Optional[Callable[[str, int, int], None]] = None,
             verify: bool = True) -> Schedule:
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

    Returns
    -------
    Schedule

    Raises
    ------
    ScheduleError
        If an internal invariant fails (a bug).
    """
    seconds = {}
    clock = time.perf_counter()
    net = IntTopology.of(topology)
    best = optimal_throughput(net, flow_func)
    if k is None:
        k, U = trees_per_root(net, best.x_star)
        caps = tree_capacities(net, U)
    else:
        U, caps = fixed_k(net, k, best.x_star, flow_func)
    seconds["optimal"] = time.perf_counter() - clock
    clock = time.perf_counter()
    hosts = [topology.hosts.get(c, ("alone", i)) for i, c in enumerate(topology.compute)]
    logical, segments = split_switches(net.num_nodes, net.num_ranks, caps, k, flow_func,
                                       progress, hosts)
    seconds["splitting"] = time.perf_counter() - clock
    clock = time.perf_counter()
    batches = pack_trees(net.num_ranks, logical, segments, k, flow_func, progress)
    seconds["packing"] = time.perf_counter() - clock
    names = net.names
    trees = tuple(Tree(b.root, b.multiplicity,
                       tuple((x, y, tuple(names[w] for w in path)) for x, y, path in b.edges))
                  for b in sorted(batches, key=lambda b: b.root))
    cut = tuple(names[i] for i in sorted(best.cut))
    schedule = Schedule(topology, k / U, best.x_star, k, U, cut, trees, seconds)
    if verify:
        clock = time.perf_counter()
        schedule.verify()
        seconds["verify"] = time.perf_counter() - clock
    seconds["total"] = sum(seconds.values())
    return schedule
