"""Plan JSON for the executor: trees, chunk assignment and (derived) per-rank channel steps.

Format (docs/plan-format.md): buffers are counted in *chunks*; a chunk is 1/(N·k) of the full
buffer M, so a rank's shard is k chunks and chunk ``c`` of rank ``r``'s shard is global chunk
``r·k + c``. A tree batch of multiplicity m rooted at r carries m consecutive chunks of r's shard.

Version 2 (what :func:`build_plan` writes) holds only the trees (parent arrays, switch paths by
index) and the chunk assignment; :func:`rank_steps` derives one rank's steps from them and
:func:`expand_plan` all ranks' (the version 1 layout, where every rank's steps are stored).

Step order on every rank follows one global key, so no rank can wait on a put that is ordered
behind one of its own waits (deadlock freedom): allgather sends chunk j of a tree to a child at
depth d at key d + j (pipelined wavefront); reduce-scatter sends from a child at depth d at key
j - d (deepest first); allreduce runs all reduce-scatter keys before all allgather keys. Each
(sender, receiver) pair sees its signals and waits in the same key order, so the i-th wait
matches the i-th signal.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional, Union

from ..topology.io import exact_fraction, unknown_key_message
from .schedule import COLLECTIVES, PHASES, Collective, Schedule

FORMAT = "mscomm-plan"
VERSION = 2
VERSIONS = (1, 2)
BUFFERS = ("input", "output", "scratch")
OPS = {"put": {"peer", "src", "dst"}, "signal": {"peer"}, "wait": {"peer"},
       "reduce": {"srcs", "dst"}, "copy": {"src", "dst"}}
OPTIONAL_TOP = ("name", "sizes", "topology", "algbw_gbps", "x")
TOP_KEYS = {1: ("format", "version", "collective", "num_ranks", "k", "x_star",
                "chunks_per_rank", "buffers", "trees", "ranks", "phases") + OPTIONAL_TOP,
            2: ("format", "version", "collective", "num_ranks", "k", "x_star",
                "chunks_per_rank", "buffers", "trees", "phases", "switches", "paths",
                "routes") + OPTIONAL_TOP}
TREE_KEYS = {1: ("root", "multiplicity", "first_chunk", "edges", "phase"),
             2: ("root", "multiplicity", "first_chunk", "parent", "via", "phase")}
PHASE_KEYS = ("x_star", "x", "k")
RANK_KEYS = ("rank", "scratch_chunks", "steps")
STEP_KEYS = {op: tuple(sorted(fields)) + ("op", "tree") for op, fields in OPS.items()}
COLLECTIVE_PHASES = {"allgather": ("allgather",), "reduce_scatter": ("reduce_scatter",),
                     "allreduce": ("reduce_scatter", "allgather")}


class PlanError(ValueError):
    """A plan is malformed or would not compute its collective; the message says where."""


def _strict(obj: dict, valid, where: str) -> None:
    for key in obj:
        if key not in valid:
            raise PlanError(unknown_key_message(where, key, valid))


def buffer_chunks(collective: str, num_ranks: int, k: int) -> dict[str, int]:
    """Sizes of the input and output buffers in chunks."""
    full, shard = num_ranks * k, k
    return {"allgather": {"input": shard, "output": full},
            "reduce_scatter": {"input": full, "output": shard},
            "allreduce": {"input": full, "output": full}}[collective]


# --------------------------------------------------------------------------------------------
# Building

def as_collective(schedule: Union[Schedule, Collective], collective: str) -> Collective:
    """A :class:`Collective` for ``collective`` from an allgather Schedule or a Collective.

    An allgather schedule serves reduce-scatter directly when every link has an equal reverse;
    otherwise the reduce-scatter trees are generated on the reversed fabric.
    """
    if collective not in COLLECTIVES:
        raise ValueError(f"collective must be one of {', '.join(COLLECTIVES)}, got {collective!r}")
    if isinstance(schedule, Collective):
        if tuple(schedule.phases) != COLLECTIVE_PHASES[collective]:
            if all(p in schedule.phases for p in COLLECTIVE_PHASES[collective]):
                return Collective(collective, schedule.topology,
                                  {p: schedule.phases[p] for p in COLLECTIVE_PHASES[collective]})
            raise ValueError(f"schedule has phases {list(schedule.phases)}, {collective} needs "
                             f"{list(COLLECTIVE_PHASES[collective])}")
        return schedule
    if schedule.direction != "allgather":
        if collective != "reduce_scatter":
            raise ValueError("a reduce-scatter schedule cannot build a " + collective + " plan")
        return Collective(collective, schedule.topology, {"reduce_scatter": schedule})
    from . import generate
    from .schedule import is_symmetric

    phases = {}
    for name in COLLECTIVE_PHASES[collective]:
        if name == "allgather":
            phases[name] = schedule
        elif is_symmetric(schedule.topology):
            phases[name] = Schedule(schedule.topology, schedule.x, schedule.x_star, schedule.k,
                                    schedule.U, schedule.cut, schedule.trees,
                                    dict(schedule.seconds), direction="reduce_scatter")
        else:
            phases[name] = generate(schedule.topology, direction="reduce_scatter")
    return Collective(collective, schedule.topology, phases)


def phase_trees(sched: Schedule) -> list[tuple]:
    """A schedule's trees as ``(root, multiplicity, (children, parents, paths))`` on the real
    fabric: edge i joins ``parents[i]`` to ``children[i]`` and its data cross the switch names
    ``paths[i]`` in the direction data flow (parent -> child for allgather, child -> parent for
    reduce-scatter)."""
    out = []
    ag = sched.direction == "allgather"
    for tree in sched.trees:
        edges = tree.edges
        kids = [e[1] for e in edges]
        pars = [e[0] for e in edges]
        vias = [e[2] for e in edges] if ag else [tuple(reversed(e[2])) for e in edges]
        out.append((tree.root, tree.multiplicity, (kids, pars, vias)))
    return out


def build_plan(schedule: Union[Schedule, Collective], collective: str,
               name: Optional[str] = None) -> dict:
    """The compact (version 2) plan that runs ``collective`` over the schedule's trees.

    ``schedule`` is a :class:`Collective` from :func:`~mscomm.forestcoll.generate_collective`
    or an allgather :class:`Schedule` (see :func:`as_collective`).

    Raises
    ------
    ValueError
        For an unknown collective.
    """
    coll = as_collective(schedule, collective)
    phases = {p: (s.x_star, s.x, s.k, phase_trees(s)) for p, s in coll.phases.items()}
    return plan_from_phases(coll.topology, collective, phases, name=name)


def plan_from_phases(topology, collective: str, phases: dict, name: Optional[str] = None) -> dict:
    """A version 2 plan from ``phases``: name -> (x_star, x, k, trees as in
    :func:`phase_trees`). Used by ForestColl and by the ring baseline."""
    N = topology.num_ranks
    k = math.lcm(*(spec[2] for spec in phases.values()))
    import numpy as np

    switch_index = {w: i for i, w in enumerate(topology.switches)}
    path_ids: dict[tuple, int] = {(): 0}
    name_ids: dict[tuple, int] = {(): 0}  # switch-name tuple -> path id
    encoded, all_keys, all_pids = [], [], []
    for phase, (x_star, x, kp, trees) in phases.items():
        scale = k // kp
        offset: dict[int, int] = defaultdict(int)
        for entry in trees:
            if len(entry) == 4:  # (root, mult, parent dict, path dict), as ring_plan gives
                root, mult, parent, path = entry
                kids = list(parent)
                pars, vias = [parent[c] for c in kids], [path[c] for c in kids]
            else:
                root, mult, (kids, pars, vias) = entry
            pids = []
            for via in vias:
                pid = name_ids.get(via)
                if pid is None:
                    key = tuple(switch_index[w] for w in via)
                    pid = name_ids[via] = path_ids.setdefault(key, len(path_ids))
                pids.append(pid)
            kid_a = np.asarray(kids, dtype=np.int64)
            par_a = np.asarray(pars, dtype=np.int64)
            pid_a = np.asarray(pids, dtype=np.int64)
            keys = par_a * N + kid_a if phase == "allgather" else kid_a * N + par_a
            encoded.append((phase, root, mult * scale, offset[root], kid_a, par_a, pid_a, keys))
            all_keys.append(keys)
            all_pids.append(pid_a)
            offset[root] += mult * scale
    npaths = len(path_ids)
    keys = np.concatenate(all_keys) if all_keys else np.zeros(0, dtype=np.int64)
    pids = np.concatenate(all_pids) if all_pids else np.zeros(0, dtype=np.int64)
    uniq, counts = np.unique(keys * npaths + pids, return_counts=True)
    ukey, upid = uniq // npaths, uniq % npaths
    order = np.lexsort((-counts, ukey))  # per pair, its most used path first
    head = order[np.r_[True, ukey[order][1:] != ukey[order][:-1]]] if order.size else order
    default = np.full(N * N, -1, dtype=np.int64)
    default[ukey[head]] = upid[head]
    trees_out = []
    for phase, root, mult, first, kid_a, par_a, pid_a, tkeys in encoded:
        par = np.full(N, -1, dtype=np.int64)
        par[kid_a] = par_a
        entry = {"phase": phase, "root": root, "multiplicity": mult, "first_chunk": first,
                 "parent": par.tolist()}
        odd = np.flatnonzero(pid_a != default[tkeys])
        if odd.size:
            entry["via"] = [[int(kid_a[i]), int(pid_a[i])] for i in odd]
        trees_out.append(entry)
    routes = [[int(key // N), int(key % N), int(default[key])] for key in ukey[head]]
    coll_x_star = len(phases) / sum(1 / Fraction(spec[0]) for spec in phases.values())
    coll_x = len(phases) / sum(1 / Fraction(spec[1]) for spec in phases.values())
    algbw = N / sum(1 / Fraction(spec[1]) for spec in phases.values())
    plan = {"format": FORMAT, "version": VERSION, "collective": collective,
            "topology": topology.name, "num_ranks": N, "k": k,
            "x_star": str(coll_x_star), "x": str(coll_x), "algbw_gbps": float(algbw),
            "chunks_per_rank": k, "buffers": buffer_chunks(collective, N, k),
            "phases": {p: {"x_star": str(spec[0]), "x": str(spec[1]), "k": spec[2]}
                       for p, spec in phases.items()},
            "switches": list(topology.switches),
            "paths": [list(p) for p, _ in sorted(path_ids.items(), key=lambda e: e[1])],
            "routes": routes,
            "trees": trees_out}
    if name is not None:
        plan["name"] = name
    return plan


# --------------------------------------------------------------------------------------------
# Reading trees and deriving steps

class _Tree:
    """One tree batch of a plan, decoded: children in edge order, depth, switch paths."""

    __slots__ = ("index", "phase", "root", "mult", "first", "parent", "children", "depth",
                 "path", "order")

    def __init__(self, index, phase, root, mult, first, edges, N):
        self.index, self.phase, self.root, self.mult, self.first = index, phase, root, mult, first
        self.parent = [-1] * N
        self.children: list[list[int]] = [[] for _ in range(N)]
        self.depth = [0] * N
        self.path: dict[int, tuple] = {}
        self.order = []  # (parent, child) in breadth-first order
        for p, c, via in edges:
            self.parent[c] = p
            self.children[p].append(c)
            self.depth[c] = self.depth[p] + 1
            self.path[c] = via
            self.order.append((p, c))


def _decode_trees(plan: dict) -> list[_Tree]:
    """The plan's trees in either version (version 2 parent arrays are walked breadth first,
    children in rank order). Assumes a structurally valid plan."""
    N = plan["num_ranks"]
    out = []
    if plan["version"] == 1:
        for i, t in enumerate(plan["trees"]):
            phase = t.get("phase")
            edges = [(p, c, tuple(via)) for p, c, via in t["edges"]]
            phases = [phase] if phase else list(COLLECTIVE_PHASES[plan["collective"]])
            for ph in phases:  # old v1 files: one tree set serves both phases
                mine = edges if phase or ph == "allgather" else \
                    [(p, c, tuple(reversed(via))) for p, c, via in edges]
                out.append(_Tree(i, ph, t["root"], t["multiplicity"], t.get("first_chunk", 0),
                                 mine, N))
        return out
    switches, paths = plan["switches"], plan["paths"]
    names = [tuple(switches[w] for w in p) for p in paths]
    default = {(s, r): pid for s, r, pid in plan["routes"]}
    for i, t in enumerate(plan["trees"]):
        parent, root = t["parent"], t["root"]
        via = {c: pid for c, pid in t.get("via", [])}
        kids: list[list[int]] = [[] for _ in range(N)]
        for c, p in enumerate(parent):
            if p >= 0:
                kids[p].append(c)
        edges, queue = [], [root]
        for v in queue:
            for c in kids[v]:
                pair = (v, c) if t["phase"] == "allgather" else (c, v)
                pid = via.get(c, default.get(pair, 0))
                edges.append((v, c, names[pid]))
                queue.append(c)
        out.append(_Tree(i, t["phase"], root, t["multiplicity"], t["first_chunk"], edges, N))
    return out


def _derive(plan: dict, ranks, trees: Optional[list] = None) -> dict[int, tuple[int, list]]:
    """rank -> (scratch chunks, ordered steps) for the ranks in ``ranks``."""
    N, k, collective = plan["num_ranks"], plan["k"], plan["collective"]
    trees = trees if trees is not None else _decode_trees(plan)
    wanted = set(ranks)
    keyed: dict[int, list] = {r: [] for r in wanted}
    base = [0] * N  # scratch chunks used by earlier reduce-scatter trees, per rank
    ag_phase = 1 if collective == "allreduce" else 0
    for tree in trees:
        i, root, first, kids = tree.index, tree.root, tree.first, tree.children
        depth, parent = tree.depth, tree.parent
        if tree.phase == "reduce_scatter":
            per = [len(kids[v]) + (1 if kids[v] and v != root else 0) for v in range(N)]
            for v in wanted:
                p = parent[v]
                for j in range(tree.mult):
                    g = root * k + first + j
                    key = (0, j - depth[v], i, j)
                    out = keyed[v]
                    mine = base[v] + j * per[v]
                    for c in kids[v]:
                        out.append(((0, j - depth[c], i, j, 0),
                                    {"op": "wait", "peer": c, "tree": i}))
                    if v == root:
                        dst = ["output", g if collective == "allreduce" else first + j]
                    elif kids[v]:
                        dst = ["scratch", mine + len(kids[v])]
                    else:
                        dst = ["input", g]
                    if kids[v]:
                        srcs = [["input", g]] + [["scratch", mine + o] for o in range(len(kids[v]))]
                        out.append((key + (1,), {"op": "reduce", "srcs": srcs, "dst": dst}))
                    if v != root:
                        slot = base[p] + j * per[p] + kids[p].index(v)
                        out.append((key + (2,), {"op": "put", "peer": p, "tree": i,
                                                 "src": dst, "dst": ["scratch", slot]}))
                        out.append((key + (3,), {"op": "signal", "peer": p, "tree": i}))
            for v in range(N):
                base[v] += tree.mult * per[v]
        else:
            for v in wanted:
                out = keyed[v]
                for j in range(tree.mult):
                    g = root * k + first + j
                    if collective == "allgather" and v == root:
                        out.append(((ag_phase, j, i, j, 0), {"op": "copy", "src": ["input", first + j],
                                                             "dst": ["output", g]}))
                    if v != root:
                        out.append(((ag_phase, depth[v] + j, i, j, 0),
                                    {"op": "wait", "peer": parent[v], "tree": i}))
                    for c in kids[v]:
                        key = (ag_phase, depth[c] + j, i, j)
                        out.append((key + (1,), {"op": "put", "peer": c, "tree": i,
                                                 "src": ["output", g], "dst": ["output", g]}))
                        out.append((key + (2,), {"op": "signal", "peer": c, "tree": i}))
    return {r: (base[r], [s for _, s in sorted(keyed[r], key=lambda e: e[0])]) for r in wanted}


def rank_steps(plan: dict, rank: int) -> dict:
    """The steps of one rank: ``{"rank", "collective", "num_ranks", "k", "buffers",
    "scratch_chunks", "steps"}`` with steps in the version 1 step format. Works for version 1
    (stored steps) and version 2 (derived) plans.

    Raises
    ------
    PlanError
        If ``rank`` is not a rank of the plan.
    """
    N = plan["num_ranks"]
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < N:
        raise PlanError(f"rank {rank!r} is not a rank of this {N}-rank plan")
    # The executor's subset of version 1 ({"collective", "num_ranks", "k", "ranks"}, no version
    # or buffers) is read as version 1.
    head = {"rank": rank, "collective": plan["collective"], "num_ranks": N, "k": plan["k"],
            "buffers": dict(plan.get("buffers") or {})}
    if plan.get("version", 1) == 1:
        entry = plan["ranks"][rank]
        return dict(head, scratch_chunks=entry.get("scratch_chunks", 0), steps=entry["steps"])
    scratch, steps = _derive_one(plan, rank)
    return dict(head, scratch_chunks=scratch, steps=steps)


def _derive_one(plan: dict, r: int) -> tuple[int, list]:
    """:func:`_derive` for one rank of a version 2 plan without decoding whole trees: per
    tree a few numpy passes over the parent array (children of r, its parent's children,
    scratch offsets), so a 1024-rank plan's rank loads in well under a second."""
    import numpy as np

    N, k, collective = plan["num_ranks"], plan["k"], plan["collective"]
    ag_phase = 1 if collective == "allreduce" else 0
    base = np.zeros(N, dtype=np.int64)
    keyed: list = []
    for i, t in enumerate(plan["trees"]):
        par = np.asarray(t["parent"], dtype=np.int64)
        root, mult, first = t["root"], t["multiplicity"], t["first_chunk"]
        parent = int(par[r])
        kids = np.flatnonzero(par == r).tolist()
        depth, v = 0, r
        while v != root:
            v = int(par[v])
            depth += 1
        if t["phase"] == "reduce_scatter":
            nkids = np.bincount(par[par >= 0], minlength=N)
            per = nkids + ((nkids > 0) & (np.arange(N) != root))
            mine_base, per_r = int(base[r]), int(per[r])
            if parent >= 0:
                p_base, per_p = int(base[parent]), int(per[parent])
                ordinal = int(np.count_nonzero(par[:r] == parent))
            for j in range(mult):
                g = root * k + first + j
                key = (0, j - depth, i, j)
                mine = mine_base + j * per_r
                for c in kids:
                    keyed.append(((0, j - depth - 1, i, j, 0), {"op": "wait", "peer": c, "tree": i}))
                if r == root:
                    dst = ["output", g if collective == "allreduce" else first + j]
                elif kids:
                    dst = ["scratch", mine + len(kids)]
                else:
                    dst = ["input", g]
                if kids:
                    srcs = [["input", g]] + [["scratch", mine + o] for o in range(len(kids))]
                    keyed.append((key + (1,), {"op": "reduce", "srcs": srcs, "dst": dst}))
                if r != root:
                    slot = p_base + j * per_p + ordinal
                    keyed.append((key + (2,), {"op": "put", "peer": parent, "tree": i,
                                               "src": dst, "dst": ["scratch", slot]}))
                    keyed.append((key + (3,), {"op": "signal", "peer": parent, "tree": i}))
            base += mult * per
        else:
            for j in range(mult):
                g = root * k + first + j
                if collective == "allgather" and r == root:
                    keyed.append(((ag_phase, j, i, j, 0), {"op": "copy", "src": ["input", first + j],
                                                           "dst": ["output", g]}))
                if r != root:
                    keyed.append(((ag_phase, depth + j, i, j, 0),
                                  {"op": "wait", "peer": parent, "tree": i}))
                for c in kids:
                    key = (ag_phase, depth + 1 + j, i, j)
                    keyed.append((key + (1,), {"op": "put", "peer": c, "tree": i,
                                               "src": ["output", g], "dst": ["output", g]}))
                    keyed.append((key + (2,), {"op": "signal", "peer": c, "tree": i}))
    return int(base[r]), [step for _, step in sorted(keyed, key=lambda e: e[0])]


def expand_plan(plan: dict) -> dict:
    """The version 1 (expanded) plan: trees as breadth-first edge lists with switch names and
    every rank's steps. A version 1 plan is returned as a copy."""
    if plan["version"] == 1:
        return json.loads(json.dumps(plan))
    trees = _decode_trees(plan)
    derived = _derive(plan, range(plan["num_ranks"]), trees)
    out = {key: value for key, value in plan.items()
           if key not in ("switches", "paths", "routes", "trees")}
    out["version"] = 1
    out["trees"] = [{"phase": t.phase, "root": t.root, "multiplicity": t.mult,
                     "first_chunk": t.first,
                     "edges": [[p, c, list(t.path[c])] for p, c in t.order]} for t in trees]
    out["ranks"] = [{"rank": r, "scratch_chunks": derived[r][0], "steps": derived[r][1]}
                    for r in range(plan["num_ranks"])]
    return out


def validate_plan(obj: Any, simulate: bool = True, topology=None) -> None:
    """Check a plan (version 1 or 2) and raise :class:`PlanError` naming the first problem.

    With ``topology`` (a :class:`~mscomm.topology.Topology`) also checks that every tree edge
    and every put follows existing links (through the switches it names) and that, phase by
    phase, no link carries more than its bandwidth at the plan's rates.
    """
    try:
        _validate_plan(obj, simulate, topology)
    except PlanError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError) as exc:
        # A field of the wrong JSON type deep inside: still the caller's malformed input.
        raise PlanError(f"malformed plan: {type(exc).__name__}: {exc}") from None


def _validate_plan(obj: Any, simulate: bool = True, topology=None) -> None:
    """Fields, steps, trees; with ``simulate`` a symbolic run of all ranks (no chunk read
    before it is written or before waiting for the putter's signal, none written twice, no
    deadlock, outputs exactly what the collective defines); with ``topology`` links and loads.
    """
    if not isinstance(obj, dict):
        raise PlanError(f"a plan must be a JSON object, got {type(obj).__name__}")
    version = obj.get("version")
    if obj.get("format") != FORMAT or version not in VERSIONS:
        raise PlanError(f"not a {FORMAT} version 1 or 2 plan (format={obj.get('format')!r}, "
                        f"version={version!r})")
    _strict(obj, TOP_KEYS[version], "plan")
    required = ("collective", "num_ranks", "k", "x_star", "chunks_per_rank", "buffers", "trees")
    required += ("ranks",) if version == 1 else ("phases", "switches", "paths", "routes")
    for key in required:
        if key not in obj:
            raise PlanError(f"plan is missing the field {key!r}")
    collective, N, k = obj["collective"], obj["num_ranks"], obj["k"]
    if collective not in COLLECTIVES:
        raise PlanError(f"collective must be one of {', '.join(COLLECTIVES)}, got {collective!r}")
    for name, value, low in (("num_ranks", N, 2), ("k", k, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise PlanError(f"{name} must be an integer >= {low}, got {value!r}")
    _fraction(obj["x_star"], "x_star")
    if obj["chunks_per_rank"] != k:
        raise PlanError(f"chunks_per_rank {obj['chunks_per_rank']!r} differs from k={k}")
    if obj["buffers"] != buffer_chunks(collective, N, k):
        raise PlanError(f"buffers {obj['buffers']!r}, expected "
                        f"{buffer_chunks(collective, N, k)} for {collective}")
    if "phases" in obj:
        phases = obj["phases"]
        if not isinstance(phases, dict) or set(phases) != set(COLLECTIVE_PHASES[collective]):
            raise PlanError(f"phases must be an object with {list(COLLECTIVE_PHASES[collective])}"
                            f" for {collective}, got {phases!r}")
        for name, spec in phases.items():
            _strict(spec, PHASE_KEYS, f"phases.{name}")
            for key in PHASE_KEYS:
                if key not in spec:
                    raise PlanError(f"phases.{name} is missing {key!r}")
            _fraction(spec["x_star"], f"phases.{name}.x_star")
            _fraction(spec["x"], f"phases.{name}.x")
            if not isinstance(spec["k"], int) or spec["k"] < 1 or k % spec["k"]:
                raise PlanError(f"phases.{name}.k {spec['k']!r} must divide k={k}")
    if version == 2:
        _check_compact(obj)
    trees = obj["trees"]
    if not isinstance(trees, list):
        raise PlanError("trees must be a list")
    _check_trees(obj, N, k)
    if version == 1:
        ranks = obj["ranks"]
        if not isinstance(ranks, list) or [r.get("rank") if isinstance(r, dict) else None
                                           for r in ranks] != list(range(N)):
            raise PlanError(f"ranks must list ranks 0..{N - 1} in order")
        sizes = [dict(obj["buffers"], scratch=entry.get("scratch_chunks", 0)) for entry in ranks]
        for entry in ranks:
            r = entry["rank"]
            _strict(entry, RANK_KEYS, f"ranks[{r}]")
            if not isinstance(entry.get("steps"), list):
                raise PlanError(f"rank {r}: 'steps' must be a list")
            for i, step in enumerate(entry["steps"]):
                _check_step(step, r, i, N, sizes)
    if topology is not None:
        check_plan_links(obj, topology)
    if simulate:
        _simulate(expand_plan(obj) if version == 2 else obj)


def _fraction(value: Any, name: str) -> Fraction:
    try:
        x = exact_fraction(value)
        if x <= 0:
            raise ValueError
        return x
    except (ValueError, TypeError, ZeroDivisionError):
        raise PlanError(f"{name} must be a positive fraction string, got {value!r}") from None


def _check_compact(obj: dict) -> None:
    N = obj["num_ranks"]
    switches, paths, routes = obj["switches"], obj["paths"], obj["routes"]
    if not isinstance(switches, list) or not all(isinstance(w, str) for w in switches):
        raise PlanError("switches must be a list of names")
    if not isinstance(paths, list) or not paths or paths[0] != []:
        raise PlanError("paths must be a list of switch index lists starting with []")
    for i, p in enumerate(paths):
        if not isinstance(p, list) or not all(isinstance(w, int) and 0 <= w < len(switches)
                                              for w in p):
            raise PlanError(f"paths[{i}] {p!r} is not a list of switch indices")
    if not isinstance(routes, list):
        raise PlanError("routes must be a list of [sender, receiver, path index]")
    for i, r in enumerate(routes):
        if not (isinstance(r, list) and len(r) == 3 and all(isinstance(x, int) for x in r)
                and 0 <= r[0] < N and 0 <= r[1] < N and 0 <= r[2] < len(paths)):
            raise PlanError(f"routes[{i}] {r!r} is not [sender, receiver, path index]")


def _check_trees(obj: dict, N: int, k: int) -> None:
    version, trees = obj["version"], obj["trees"]
    per_root: dict = defaultdict(int)
    wanted = COLLECTIVE_PHASES[obj["collective"]]
    npaths = len(obj["paths"]) if version == 2 else 0
    for i, tree in enumerate(trees):
        if not isinstance(tree, dict):
            raise PlanError(f"trees[{i}] must be an object")
        _strict(tree, TREE_KEYS[version], f"trees[{i}]")
        root, mult, phase = tree.get("root"), tree.get("multiplicity"), tree.get("phase")
        if not isinstance(root, int) or not 0 <= root < N:
            raise PlanError(f"trees[{i}]: root {root!r} is not a rank")
        if not isinstance(mult, int) or mult < 1:
            raise PlanError(f"trees[{i}]: multiplicity must be a positive integer, got {mult!r}")
        if phase is None and version == 2:
            raise PlanError(f"trees[{i}] is missing 'phase'")
        if phase is not None and phase not in wanted:
            raise PlanError(f"trees[{i}]: phase {phase!r} is not one of {list(wanted)}")
        for ph in ([phase] if phase else wanted):
            per_root[(ph, root)] += mult
        if version == 1:
            reached = {root}
            for edge in tree.get("edges", []):
                if not (isinstance(edge, list) and len(edge) == 3 and edge[0] in reached
                        and isinstance(edge[1], int) and 0 <= edge[1] < N
                        and edge[1] not in reached):
                    raise PlanError(f"trees[{i}] (root {root}): edge {edge!r} does not extend "
                                    "the tree")
                reached.add(edge[1])
            if len(reached) != N:
                raise PlanError(f"trees[{i}] (root {root}) spans {len(reached)} of {N} ranks")
            continue
        parent = tree.get("parent")
        if not isinstance(parent, list) or len(parent) != N:
            raise PlanError(f"trees[{i}] (root {root}): parent must list {N} ranks")
        if not isinstance(tree.get("first_chunk"), int):
            raise PlanError(f"trees[{i}] (root {root}): first_chunk must be an integer")
        if parent[root] != -1:
            raise PlanError(f"trees[{i}]: the root {root} must have parent -1")
        for c, p in enumerate(parent):
            if c != root and not (type(p) is int and 0 <= p < N and p != c):
                raise PlanError(f"trees[{i}] (root {root}): parent of {c} is {p!r}, not a rank")
        _check_spans(parent, root, i, N)
        for entry in tree.get("via", []):
            if not (isinstance(entry, list) and len(entry) == 2 and entry[0] in range(N)
                    and entry[0] != root and isinstance(entry[1], int)
                    and 0 <= entry[1] < npaths):
                raise PlanError(f"trees[{i}] (root {root}): via entry {entry!r} is not "
                                "[child, path index]")
    for ph in wanted:
        for r in range(N):
            if per_root[(ph, r)] != k:
                raise PlanError(f"root {r}: {ph} tree multiplicities sum to {per_root[(ph, r)]}"
                                f", expected k={k}")
    if version == 1:
        return
    for i, t in enumerate(trees):
        if t["first_chunk"] < 0 or t["first_chunk"] + t["multiplicity"] > k:
            raise PlanError(f"trees[{i}]: chunks {t['first_chunk']}..{t['first_chunk'] + t['multiplicity'] - 1}"
                            f" leave the shard of {k} chunks")


def _check_spans(parent: list, root: int, i: int, N: int) -> None:
    """Every rank reaches the root by parent steps (no cycle), by pointer doubling."""
    import numpy as np

    up = np.asarray(parent, dtype=np.int64)
    up[root] = root
    for _ in range(max(1, N.bit_length()) + 1):
        up = up[up]
    reached = int((up == root).sum())
    if reached != N:
        raise PlanError(f"trees[{i}] (root {root}) spans {reached} of {N} ranks "
                        "(its parent array has a cycle)")


def check_plan_links(plan: dict, topology) -> None:
    """Every tree edge and put follows the topology's links; per phase, no link is loaded
    beyond its bandwidth (a chunk tree of phase p carries x_p / k GB/s).

    Raises
    ------
    PlanError
        Naming the tree, edge or link at fault.
    """
    N = plan["num_ranks"]
    if topology.num_ranks != N:
        raise PlanError(f"plan has {N} ranks, topology {topology.name!r} has "
                        f"{topology.num_ranks}")
    names, links = topology.compute, topology.links
    k = plan["k"]
    rates = {p: exact_fraction(spec["x"]) / k for p, spec in plan.get("phases", {}).items()}
    if plan["version"] == 2:
        _check_compact_links(plan, topology, rates)
        return
    trees = _decode_trees(plan)
    load: dict = defaultdict(Counter)
    phase_rate: dict = {}
    edges_of: dict[int, set] = defaultdict(set)
    for t in trees:
        rate = rates.get(t.phase, exact_fraction(plan.get("x", plan["x_star"])) / k)
        for p, c in t.order:
            sender, receiver = (p, c) if t.phase == "allgather" else (c, p)
            hops = (names[sender], *t.path[c], names[receiver])
            for arc in zip(hops, hops[1:]):
                if arc not in links:
                    raise PlanError(f"trees[{t.index}] ({t.phase}, root {t.root}): edge "
                                    f"{sender}->{receiver} crosses {arc[0]} -> {arc[1]}, "
                                    "which is not a link of the topology")
                load[t.phase][arc] += t.mult  # chunk trees; times the rate below
            edges_of[t.index].add((sender, receiver, t.phase))
        phase_rate[t.phase] = rate
    for phase, per_link in load.items():
        for arc, count in per_link.items():
            gbps = count * phase_rate[phase]
            if gbps > links[arc]:
                raise PlanError(f"{phase}: link {arc[0]} -> {arc[1]} would carry {gbps} GB/s "
                                f"(= {float(gbps):.4g}), more than its {links[arc]} GB/s")
    if plan["version"] == 1:
        for entry in plan["ranks"]:
            r = entry["rank"]
            for i, step in enumerate(entry["steps"]):
                if step["op"] != "put":
                    continue
                tree = step.get("tree")
                ok = tree in edges_of and any(s == r and v == step["peer"]
                                              for s, v, _ in edges_of[tree])
                if not ok:
                    raise PlanError(f"rank {r} step {i}: put to rank {step['peer']} is not an "
                                    f"edge of trees[{tree}], so it follows no checked links")


def _check_compact_links(plan: dict, topology, rates: dict) -> None:
    """check_plan_links for a version 2 plan: tree edges are counted per (sender, receiver,
    path) with numpy, then each distinct route is checked once."""
    import numpy as np

    N = plan["num_ranks"]
    names, links = topology.compute, topology.links
    paths = [tuple(plan["switches"][w] for w in p) for p in plan["paths"]]
    default = {(snd, rcv): pid for snd, rcv, pid in plan["routes"]}
    for phase in rates:
        counts = np.zeros(N * N, dtype=np.int64)  # sender * N + receiver -> chunk trees
        extra: Counter = Counter()  # (sender, receiver, path) given by a tree's via
        for t in plan["trees"]:
            if t["phase"] != phase:
                continue
            par = np.asarray(t["parent"], dtype=np.int64)
            kids = np.flatnonzero(par >= 0)
            keys = par[kids] * N + kids if phase == "allgather" else kids * N + par[kids]
            np.add.at(counts, keys, t["multiplicity"])
            for c, pid in t.get("via", []):
                pair = (t["parent"][c], c) if phase == "allgather" else (c, t["parent"][c])
                counts[pair[0] * N + pair[1]] -= t["multiplicity"]
                extra[(pair[0], pair[1], pid)] += t["multiplicity"]
        routes = Counter(extra)
        for key in np.flatnonzero(counts):
            snd, rcv = divmod(int(key), N)
            if (snd, rcv) not in default:
                raise PlanError(f"{phase}: ranks {snd}->{rcv} exchange data but routes has no "
                                "entry for them")
            routes[(snd, rcv, default[(snd, rcv)])] += int(counts[key])
        load: Counter = Counter()
        for (snd, rcv, pid), count in routes.items():
            hops = (names[snd], *paths[pid], names[rcv])
            for arc in zip(hops, hops[1:]):
                if arc not in links:
                    raise PlanError(f"{phase}: tree edge {snd}->{rcv} crosses {arc[0]} -> "
                                    f"{arc[1]}, which is not a link of the topology")
                load[arc] += count
        for arc, count in load.items():
            gbps = count * rates[phase]
            if gbps > links[arc]:
                raise PlanError(f"{phase}: link {arc[0]} -> {arc[1]} would carry {gbps} GB/s "
                                f"(= {float(gbps):.4g}), more than its {links[arc]} GB/s")


def _check_step(step: Any, r: int, i: int, N: int, sizes: list[dict]) -> None:
    where = f"rank {r} step {i}"
    if not isinstance(step, dict) or step.get("op") not in OPS:
        raise PlanError(f"{where}: op must be one of {', '.join(OPS)}, got {step!r}")
    _strict(step, STEP_KEYS[step["op"]], f"{where} ({step['op']})")
    missing = OPS[step["op"]] - step.keys()
    if missing:
        raise PlanError(f"{where} ({step['op']}): missing {', '.join(sorted(missing))}")
    if "peer" in step:
        peer = step["peer"]
        if isinstance(peer, bool) or not isinstance(peer, int) or not 0 <= peer < N or peer == r:
            raise PlanError(f"{where} ({step['op']}): peer {peer!r} is not another rank")
    refs = [(r, ref) for ref in step.get("srcs", []) + [step[f] for f in ("src", "dst")
                                                       if f in step]]
    if step["op"] == "put":  # the destination is in the peer's buffers
        refs[-1] = (step["peer"], step["dst"])
    for owner, ref in refs:
        ok = (isinstance(ref, list) and len(ref) == 2 and ref[0] in BUFFERS
              and isinstance(ref[1], int) and not isinstance(ref[1], bool))
        if not ok:
            raise PlanError(f"{where} ({step['op']}): chunk reference {ref!r} is not "
                            "[buffer, index]")
        if not 0 <= ref[1] < sizes[owner][ref[0]]:
            raise PlanError(f"{where} ({step['op']}): {ref[0]}[{ref[1]}] of rank {owner} is out "
                            f"of range ({sizes[owner][ref[0]]} chunks)")


def _simulate(plan: dict) -> None:
    """Run every rank's steps on symbolic chunks (multisets of (rank, input chunk))."""
    N, k, collective = plan["num_ranks"], plan["k"], plan["collective"]
    data: dict[tuple, tuple] = {}  # (rank, buffer, index) -> sorted tuple of contributions
    writer: dict[tuple, tuple[int, int]] = {}  # remote-put chunk -> (putter, its signals then)
    for r in range(N):
        for i in range(plan["buffers"]["input"]):
            data[(r, "input", i)] = ((r, i),)
    signals = defaultdict(int)  # (sender, receiver) -> count
    waits = defaultdict(int)
    pc = [0] * N
    steps = [entry["steps"] for entry in plan["ranks"]]

    def read(r: int, ref: list, where: str) -> tuple:
        slot = (r, ref[0], ref[1])
        if slot not in data:
            raise PlanError(f"{where}: reads {ref[0]}[{ref[1]}] before anything is written there")
        if slot in writer and waits[(writer[slot][0], r)] <= writer[slot][1]:
            raise PlanError(f"{where}: reads {ref[0]}[{ref[1]}] put by rank {writer[slot][0]} "
                            "before waiting for that rank's signal")
        return data[slot]

    def write(slot: tuple, value: tuple, where: str) -> None:
        if slot in data:
            raise PlanError(f"{where}: writes {slot[1]}[{slot[2]}] of rank {slot[0]} twice")
        data[slot] = value

    progress = True
    while progress:
        progress = False
        for r in range(N):
            while pc[r] < len(steps[r]):
                step, where = steps[r][pc[r]], f"rank {r} step {pc[r]}"
                op = step["op"]
                if op == "wait":
                    if signals[(step["peer"], r)] <= waits[(step["peer"], r)]:
                        break
                    waits[(step["peer"], r)] += 1
                elif op == "signal":
                    signals[(r, step["peer"])] += 1
                elif op == "put":
                    slot = (step["peer"], *step["dst"])
                    write(slot, read(r, step["src"], where), where)
                    writer[slot] = (r, signals[(r, step["peer"])])
                elif op == "copy":
                    write((r, *step["dst"]), read(r, step["src"], where), where)
                else:
                    total = tuple(sorted(x for ref in step["srcs"] for x in read(r, ref, where)))
                    write((r, *step["dst"]), total, where)
                pc[r] += 1
                progress = True
    stuck = [r for r in range(N) if pc[r] < len(steps[r])]
    if stuck:
        detail = ", ".join(f"rank {r} at step {pc[r]} ({steps[r][pc[r]]['op']} on rank "
                           f"{steps[r][pc[r]]['peer']})" for r in stuck[:4])
        raise PlanError(f"plan deadlocks: {len(stuck)} rank(s) blocked, e.g. {detail}")
    for (a, b), count in signals.items():
        if waits[(a, b)] != count:
            raise PlanError(f"rank {a} sends {count} signals to rank {b}, which waits for "
                            f"{waits[(a, b)]}")
    for r in range(N):
        for g in range(plan["buffers"]["output"]):
            if collective == "allgather":
                want = ((g // k, g % k),)
            elif collective == "reduce_scatter":
                want = tuple((q, r * k + g) for q in range(N))
            else:
                want = tuple((q, g) for q in range(N))
            got = data.get((r, "output", g))
            if got != want:
                raise PlanError(f"rank {r} output[{g}] ends as {_show(got)}, expected "
                                f"{_show(want)}")


def _show(value: Any) -> str:
    if value is None:
        return "unwritten"
    return "sum of " + ", ".join(f"rank {q} input[{i}]" for q, i in value[:4]) + \
        (" ..." if len(value) > 4 else "")


def save_plan(plan: dict, path: Union[str, Path]) -> None:
    """Validate (without simulating) and write a plan as JSON."""
    validate_plan(plan, simulate=False)
    Path(path).write_text(json.dumps(plan, separators=(",", ":")) + "\n")


def load_plan(path: Union[str, Path], simulate: bool = False) -> dict:
    """Read and validate a plan file.

    Raises
    ------
    PlanError
        If the file is not JSON or not a valid plan.
    """
    try:
        obj = json.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise PlanError(f"cannot read plan file {str(path)!r}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:  # not UTF-8, malformed or absurdly nested JSON
        raise PlanError(f"{path}: malformed plan JSON: {exc}") from None
    validate_plan(obj, simulate=simulate)
    return obj
