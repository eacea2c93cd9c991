"""Plan JSON for the executor: the trees plus, per rank, an ordered list of channel steps.

Format (docs/plan-format.md): buffers are counted in *chunks*; a chunk is 1/(N·k) of the full
buffer M, so a rank's shard is k chunks and chunk ``c`` of rank ``r``'s shard is global chunk
``r·k + c``. A tree batch of multiplicity m rooted at r carries m consecutive chunks of r's shard.

Step order on every rank follows one global key, so no rank can wait on a put that is ordered
behind one of its own waits (deadlock freedom): allgather sends chunk j of a tree to a child at
depth d at key d + j (pipelined wavefront); reduce-scatter sends from a child at depth d at key
j - d (deepest first); allreduce runs all reduce-scatter keys before all allgather keys. Each
(sender, receiver) pair sees its signals and waits in the same key order, so the i-th wait
matches the i-th signal.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Union

from ..topology.io import exact_fraction
from .schedule import COLLECTIVES, Schedule

FORMAT = "mscomm-plan"
VERSION = 1
BUFFERS = ("input", "output", "scratch")
OPS = {"put": {"peer", "src", "dst"}, "signal": {"peer"}, "wait": {"peer"},
       "reduce": {"srcs", "dst"}, "copy": {"src", "dst"}}


class PlanError(ValueError):
    """A plan is malformed or would not compute its collective; the message says where."""


def buffer_chunks(collective: str, num_ranks: int, k: int) -> dict[str, int]:
    """Sizes of the input and output buffers in chunks."""
    full, shard = num_ranks * k, k
    return {"allgather": {"input": shard, "output": full},
            "reduce_scatter": {"input": full, "output": shard},
            "allreduce": {"input": full, "output": full}}[collective]


def build_plan(schedule: Schedule, collective: str) -> dict:
    """The plan JSON object that runs ``collective`` over ``schedule``'s trees.

    Raises
    ------
    ValueError
        For an unknown collective.
    """
    if collective not in COLLECTIVES:
        raise ValueError(f"collective must be one of {', '.join(COLLECTIVES)}, got {collective!r}")
    N, k = schedule.num_ranks, schedule.k
    steps: dict[int, list] = defaultdict(list)  # rank -> [(key, step)]
    scratch = [0] * N
    trees, offset = [], defaultdict(int)
    for index, tree in enumerate(schedule.trees):
        first = offset[tree.root]
        offset[tree.root] += tree.multiplicity
        trees.append({"root": tree.root, "multiplicity": tree.multiplicity, "first_chunk": first,
                      "edges": [[p, c, list(path)] for p, c, path in tree.edges]})
        depth, kids = tree.depth(), tree.children()
        parent = {c: p for p, c, _ in tree.edges}
        for j in range(tree.multiplicity):
            g = tree.root * k + first + j
            if collective in ("reduce_scatter", "allreduce"):
                out = g if collective == "allreduce" else first + j
                _reduce_up(steps, scratch, index, j, g, out, tree.root, depth, kids, parent)
            if collective in ("allgather", "allreduce"):
                phase = 1 if collective == "allreduce" else 0
                _broadcast_down(steps, index, j, g, first + j, tree, depth, phase, collective)
    ranks = [{"rank": r, "scratch_chunks": scratch[r],
              "steps": [s for _, s in sorted(steps[r], key=lambda e: e[0])]} for r in range(N)]
    return {"format": FORMAT, "version": VERSION, "collective": collective,
            "topology": schedule.topology.name, "num_ranks": N, "k": k,
            "x_star": str(schedule.x_star), "x": str(schedule.x),
            "algbw_gbps": float(schedule.algbw(collective)),
            "chunks_per_rank": k, "buffers": buffer_chunks(collective, N, k),
            "trees": trees, "ranks": ranks}


def _broadcast_down(steps, index, j, g, local, tree, depth, phase, collective) -> None:
    if collective == "allgather":  # the root's own chunk moves from input to output first
        steps[tree.root].append(((phase, j, index, j, 0),
                                 {"op": "copy", "src": ["input", local], "dst": ["output", g]}))
    for p, c, _ in tree.edges:
        key = (phase, depth[c] + j, index, j)
        steps[p].append((key + (1,), {"op": "put", "peer": c, "tree": index,
                                      "src": ["output", g], "dst": ["output", g]}))
        steps[p].append((key + (2,), {"op": "signal", "peer": c, "tree": index}))
        steps[c].append((key + (0,), {"op": "wait", "peer": p, "tree": index}))


def _reduce_up(steps, scratch, index, j, g, out, root, depth, kids, parent) -> None:
    slot = {}  # child -> scratch chunk at its parent
    for c, p in parent.items():
        slot[c] = scratch[p]
        scratch[p] += 1
    for v, children in kids.items():
        key = (0, j - depth[v], index, j)
        for c in children:
            steps[v].append(((0, j - depth[c], index, j, 0),
                             {"op": "wait", "peer": c, "tree": index}))
        if v == root:
            dst = ["output", out]
        elif children:
            dst = ["scratch", scratch[v]]
            scratch[v] += 1
        else:
            dst = ["input", g]
        if children:
            srcs = [["input", g]] + [["scratch", slot[c]] for c in children]
            steps[v].append((key + (1,), {"op": "reduce", "srcs": srcs, "dst": dst}))
        if v != root:
            steps[v].append((key + (2,), {"op": "put", "peer": parent[v], "tree": index,
                                          "src": dst, "dst": ["scratch", slot[v]]}))
            steps[v].append((key + (3,), {"op": "signal", "peer": parent[v], "tree": index}))


def validate_plan(obj: Any, simulate: bool = True) -> None:
    """Check a plan and raise :class:`PlanError` naming the first problem (see _validate_plan)."""
    try:
        _validate_plan(obj, simulate)
    except PlanError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError) as exc:
        # A field of the wrong JSON type deep inside: still the caller's malformed input.
        raise PlanError(f"malformed plan: {type(exc).__name__}: {exc}") from None


def _validate_plan(obj: Any, simulate: bool = True) -> None:
    """Check a plan and raise :class:`PlanError` naming the first problem.

    Checks the fields and every step (ops, peers, buffers, chunk ranges), that each root's
    tree multiplicities sum to k and every tree spans all ranks; with ``simulate``, runs all
    ranks symbolically: no rank may read a chunk before it is written (for a remote put: before
    waiting for the putter's next signal), no chunk is written twice, the steps cannot
    deadlock, and the outputs hold exactly what the collective defines.
    """
    if not isinstance(obj, dict):
        raise PlanError(f"a plan must be a JSON object, got {type(obj).__name__}")
    if obj.get("format") != FORMAT or obj.get("version") != VERSION:
        raise PlanError(f"not a {FORMAT} version {VERSION} plan (format={obj.get('format')!r}, "
                        f"version={obj.get('version')!r})")
    for key in ("collective", "num_ranks", "k", "x_star", "chunks_per_rank", "buffers", "trees",
                "ranks"):
        if key not in obj:
            raise PlanError(f"plan is missing the field {key!r}")
    collective, N, k = obj["collective"], obj["num_ranks"], obj["k"]
    if collective not in COLLECTIVES:
        raise PlanError(f"collective must be one of {', '.join(COLLECTIVES)}, got {collective!r}")
    for name, value, low in (("num_ranks", N, 2), ("k", k, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise PlanError(f"{name} must be an integer >= {low}, got {value!r}")
    try:
        if exact_fraction(obj["x_star"]) <= 0:
            raise ValueError
    except (ValueError, TypeError, ZeroDivisionError):
        raise PlanError(f"x_star must be a positive fraction string, got {obj['x_star']!r}") \
            from None
    if obj["chunks_per_rank"] != k:
        raise PlanError(f"chunks_per_rank {obj['chunks_per_rank']!r} differs from k={k}")
    if obj["buffers"] != buffer_chunks(collective, N, k):
        raise PlanError(f"buffers {obj['buffers']!r}, expected "
                        f"{buffer_chunks(collective, N, k)} for {collective}")
    _check_trees(obj["trees"], N, k)
    ranks = obj["ranks"]
    if not isinstance(ranks, list) or [r.get("rank") if isinstance(r, dict) else None
                                       for r in ranks] != list(range(N)):
        raise PlanError(f"ranks must list ranks 0..{N - 1} in order")
    sizes = [dict(obj["buffers"], scratch=entry.get("scratch_chunks", 0)) for entry in ranks]
    for entry in ranks:
        r = entry["rank"]
        if not isinstance(entry.get("steps"), list):
            raise PlanError(f"rank {r}: 'steps' must be a list")
        for i, step in enumerate(entry["steps"]):
            _check_step(step, r, i, N, sizes)
    if simulate:
        _simulate(obj)


def _check_trees(trees: Any, N: int, k: int) -> None:
    if not isinstance(trees, list):
        raise PlanError("trees must be a list")
    per_root = defaultdict(int)
    for i, tree in enumerate(trees):
        root, mult = tree.get("root"), tree.get("multiplicity")
        if not isinstance(root, int) or not 0 <= root < N:
            raise PlanError(f"trees[{i}]: root {root!r} is not a rank")
        if not isinstance(mult, int) or mult < 1:
            raise PlanError(f"trees[{i}]: multiplicity must be a positive integer, got {mult!r}")
        per_root[root] += mult
        reached = {root}
        for edge in tree.get("edges", []):
            if not (isinstance(edge, list) and len(edge) == 3 and edge[0] in reached
                    and isinstance(edge[1], int) and 0 <= edge[1] < N and edge[1] not in reached):
                raise PlanError(f"trees[{i}] (root {root}): edge {edge!r} does not extend the tree")
            reached.add(edge[1])
        if len(reached) != N:
            raise PlanError(f"trees[{i}] (root {root}) spans {len(reached)} of {N} ranks")
    for r in range(N):
        if per_root[r] != k:
            raise PlanError(f"root {r}: tree multiplicities sum to {per_root[r]}, expected k={k}")


def _check_step(step: Any, r: int, i: int, N: int, sizes: list[dict]) -> None:
    where = f"rank {r} step {i}"
    if not isinstance(step, dict) or step.get("op") not in OPS:
        raise PlanError(f"{where}: op must be one of {', '.join(OPS)}, got {step!r}")
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
