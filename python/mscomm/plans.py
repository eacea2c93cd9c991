"""Plans run by the executor: read a plan, check it, load it once per communicator, run it.

A plan (docs/plan-format.md) is a schedule given as data: per rank, ordered steps over chunks
(put, signal, wait, reduce, copy). The executor (csrc/src/executor/) runs it over the same
channels as the built-in algorithms: shared memory between ranks of one host, TCP between hosts.

Plan rank r runs on communicator rank r, so a plan fits a communicator of exactly its
``num_ranks``; a plan for another world size or collective is refused on every rank before
anything moves. Plans are validated here first (:func:`mscomm.forestcoll.plan.validate_plan`,
symbolic run included); the C++ loader then checks every index again, so a plan that skips this
module still cannot crash a rank or write outside a buffer.

>>> import mscomm
>>> comm = mscomm.Communicator(0, 1, mscomm.create_unique_id())
>>> p = comm.load_plan({"collective": "allreduce", "num_ranks": 1, "k": 1, "name": "solo",
...                     "ranks": [{"rank": 0, "scratch_chunks": 0, "steps": [
...                         {"op": "copy", "src": ["input", 0], "dst": ["output", 0]}]}]},
...                    validate=False)
>>> p.name
'plan:solo'
>>> import numpy as np
>>> mscomm.allreduce(np.arange(3.0), out=np.zeros(3), comm=comm, plan=p).tolist()
[0.0, 1.0, 2.0]
>>> comm.close()
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Union

from mscomm import _core
from mscomm.errors import InvalidArgument

PLAN_COLLECTIVES = ("allgather", "reduce_scatter", "allreduce")


class LoadedPlan:
    """A plan checked and compiled for one communicator (from :func:`load` or ``comm.load_plan``).

    Attributes
    ----------
    name : str
        ``"plan:<name>"``, the name ``algorithm=`` selects it by.
    collective : str
        ``"allgather"``, ``"reduce_scatter"`` or ``"allreduce"``.
    num_ranks, k : int
    sizes : tuple or None
        ``(min_bytes, max_bytes)`` the plan declares it is meant for (either may be None).
    digest : str
        SHA-256 of the plan's per-rank steps (equal on every rank; the cache key).
    """

    def __init__(self, comm: Any, core: Any, plan_name: str, collective: str, num_ranks: int, k: int,
                 sizes: Optional[tuple], digest: str) -> None:
        self.comm, self._core = comm, core
        self.plan_name, self.collective, self.num_ranks, self.k = plan_name, collective, num_ranks, k
        self.sizes, self.digest = sizes, digest

    @property
    def name(self) -> str:
        return f"plan:{self.plan_name}"

    def fits(self, nbytes: int) -> bool:
        """Whether a call of ``nbytes`` lies in the sizes the plan declares (always, if none)."""
        if self.sizes is None:
            return True
        lo, hi = self.sizes
        return (lo is None or nbytes >= lo) and (hi is None or nbytes <= hi)

    def __repr__(self) -> str:
        return f"<mscomm LoadedPlan {self.name} {self.collective} ranks={self.num_ranks} k={self.k}>"


def read(plan: Union[str, Path, dict, LoadedPlan]) -> dict:
    """The plan object of a path (JSON file), a dict (returned as is) or a loaded plan's source.

    Raises
    ------
    PlanError
        The file cannot be read or is not JSON.
    """
    from mscomm.forestcoll.plan import PlanError

    if isinstance(plan, dict):
        return plan
    if isinstance(plan, (str, Path)):
        try:
            obj = json.loads(Path(plan).read_bytes().decode("utf-8"))
        except OSError as exc:
            raise PlanError(f"cannot read plan file {str(plan)!r}: {exc.strerror}") from None
        except (ValueError, RecursionError) as exc:
            raise PlanError(f"{plan}: malformed plan JSON: {exc}") from None
        if isinstance(obj, dict) and "name" not in obj:
            obj["name"] = Path(plan).stem
        return obj
    raise InvalidArgument(f"a plan is a path, a dict or a loaded plan, got {type(plan).__name__}")


def rank_steps(plan: dict, rank: int) -> dict:
    """One rank's part of a plan of any format version (:func:`mscomm.forestcoll.plan.rank_steps`):
    ``{"rank", "collective", "num_ranks", "k", "buffers", "scratch_chunks", "steps"}``."""
    from mscomm.forestcoll.plan import rank_steps as steps_of

    return steps_of(plan, rank)


def _step(s: dict) -> dict:
    return {key: s[key] for key in ("op", "peer", "src", "dst", "srcs") if key in s}


def executor_json(plan: dict) -> str:
    """The plan as the C++ loader reads it: name, collective, sizes and every rank's steps."""
    head = rank_steps(plan, 0) if plan.get("num_ranks") else plan
    n = int(head["num_ranks"])
    ranks = []
    for r in range(n):
        part = head if r == 0 else rank_steps(plan, r)
        ranks.append({"rank": r, "scratch_chunks": part.get("scratch_chunks", 0),
                      "steps": [_step(s) for s in part["steps"]]})
    name = plan.get("name") or (f"{plan['topology']}-{head['collective']}" if plan.get("topology") else "unnamed")
    obj = {"name": str(name), "collective": head["collective"],
           "num_ranks": n, "k": head["k"], "ranks": ranks}
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def digest(plan: dict) -> str:
    """Cache key of a plan: SHA-256 of :func:`executor_json` (same plan, same key, any file)."""
    return hashlib.sha256(executor_json(plan).encode()).hexdigest()


def _sizes(plan: dict) -> Optional[tuple]:
    s = plan.get("sizes")
    if s is None:
        return None
    if isinstance(s, dict):
        s = [s.get("min"), s.get("max")]
    if not (isinstance(s, (list, tuple)) and len(s) == 2 and all(v is None or isinstance(v, int) for v in s)):
        raise InvalidArgument(f"plan 'sizes' must be [min_bytes, max_bytes] (either may be null), got {s!r}")
    return tuple(s)


def _registry(comm: Any) -> tuple[dict, dict]:
    """Per communicator: loaded plans by digest and by name."""
    reg = comm.__dict__.get("_loaded_plans")
    if reg is None:
        reg = comm.__dict__["_loaded_plans"] = ({}, {})
    return reg


def load(plan: Union[str, Path, dict, LoadedPlan], comm: Any = None, timeout: float | None = None,
         validate: bool = True) -> LoadedPlan:
    """Collective: check ``plan`` and compile it for ``comm`` (once: later loads of the same plan
    return the cached handle).

    Parameters
    ----------
    plan : path, dict or LoadedPlan
    comm : Communicator, optional
        Default: the communicator made by :func:`mscomm.init`.
    timeout : float, optional
        Seconds to wait for the other ranks.
    validate : bool
        Run the Python validator (fields, trees, symbolic run) first. The C++ loader's checks
        run either way.

    Returns
    -------
    LoadedPlan
        Also selectable by name: ``algorithm="plan:<name>"`` in allreduce, allgather and
        reduce_scatter on this communicator.

    Raises
    ------
    PlanError
        The plan is malformed or does not compute its collective (names rank and step).
    InvalidArgument
        The plan is for another number of ranks, or the ranks loaded different plans (raised on
        every rank).
    """
    from mscomm import _default

    comm = _default.get() if comm is None else comm
    if isinstance(plan, LoadedPlan):
        if plan.comm is not comm:
            raise InvalidArgument(f"{plan.name} was loaded on another communicator; load it on this one")
        return plan
    obj = read(plan)
    by_digest, by_name = _registry(comm)
    try:
        text = executor_json(obj)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        from mscomm.forestcoll.plan import PlanError

        raise PlanError(f"malformed plan: {type(exc).__name__}: {exc}") from None
    key = hashlib.sha256(text.encode()).hexdigest()
    if key in by_digest:
        return by_digest[key]
    n, collective = obj.get("num_ranks"), obj.get("collective")
    name = json.loads(text)["name"]
    if n != comm.size:
        raise InvalidArgument(f"plan '{name}' is for {n} ranks but the communicator has {comm.size} "
                              f"(plan rank r runs on communicator rank r); generate it for {comm.size} ranks")
    if collective not in PLAN_COLLECTIVES:
        raise InvalidArgument(f"plan '{name}': the executor runs {', '.join(PLAN_COLLECTIVES)} plans, "
                              f"not {collective!r}")
    if validate:
        from mscomm.forestcoll.plan import validate_plan

        validate_plan(obj)
    sizes = _sizes(obj)
    t = -1.0 if timeout is None else float(timeout)
    core = _core.load_plan(comm._core, text, t)
    # A row of the selection table: selectable by name (algorithm=, MSCOMM_<NAME>_ALGO), and the
    # automatic choice for the sizes the plan declares (none declared: by name only).
    lo, hi = sizes if sizes is not None else (0, 0)
    _core.offer_plan(comm._core, core, lo or 0, (hi if hi is not None else 2**63) if sizes is not None else 0)
    loaded = LoadedPlan(comm, core, core.name, collective, n, core.k, sizes, key)
    by_digest[key] = loaded
    by_name[loaded.name] = loaded
    return loaded


def loaded(comm: Any) -> dict:
    """This communicator's loaded plans by name (``"plan:<name>"``)."""
    return dict(_registry(comm)[1])


def resolve(comm: Any, collective: str, plan: Any, algorithm: Optional[str]) -> LoadedPlan:
    """The plan a call asks for: ``plan=`` (loaded on first use) or ``algorithm="plan:<name>"``."""
    if plan is not None:
        handle = load(plan, comm=comm)
    else:
        by_name = _registry(comm)[1]
        handle = by_name.get(algorithm or "")
        if handle is None:
            have = ", ".join(sorted(by_name)) or "none"
            raise InvalidArgument(f"{collective}: no plan named {algorithm!r} is loaded on this communicator "
                                  f"(loaded: {have}); load it first with comm.load_plan(path)")
    if handle.collective != collective:
        raise InvalidArgument(f"{collective}: {handle.name} is a {handle.collective} plan")
    return handle


def wants_plan(plan: Any, algorithm: Optional[str]) -> bool:
    return plan is not None or (isinstance(algorithm, str) and algorithm.startswith("plan:"))


def submit(comm: Any, collective: str, plan: Any, algorithm: Optional[str], src: Any, dst: Any, count: int,
           op: str, timeout: float, result: Any, async_op: bool) -> Any:
    """Run a collective through a plan (the collectives call this for ``plan=`` / ``plan:<name>``)."""
    comm._drain()  # loading is collective: keep it in issue order with earlier async calls
    handle = resolve(comm, collective, plan, algorithm)
    core = handle._core
    return comm._submit(lambda: core.run(src.ptr, dst.ptr, count, src.dtype, op, timeout), result, async_op)
