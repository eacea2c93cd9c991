"""The plan executor against numpy references, on real processes.

Plans: the ring as a plan (tests/plan_builders.py), every plan ForestColl generates for the zoo
topologies of 2-8 ranks (topology/*.json and mscomm.topology.zoo generators) and for random
topologies (hypothesis). Each job runs allgather, reduce_scatter and allreduce over every dtype,
odd counts (fewer elements than chunks, remainders, several pieces and staging rounds), in place
and out of place, and checks buffer guards around every output. Ids read like
``executor/tcp/3ranks``; failures are reported as ``plan/collective/dtype/count/inplace``.
Then: broken plans are refused with an error naming rank and step (on every rank, without a
hang), and a fuzzed corpus of mutated plans fed straight to the C++ loader never crashes it.
"""
from __future__ import annotations

import copy
import json
import os
import random
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import run_job, transports_env
from plan_builders import exchange_plan, ring_plan

from mscomm import _core, plans
from mscomm.errors import InvalidArgument
from mscomm.forestcoll import generate
from mscomm.forestcoll.plan import PlanError, build_plan, validate_plan
from mscomm.topology import zoo

COLLECTIVES = ("allreduce", "allgather", "reduce_scatter")
# Small pieces and slots, so a few thousand elements already take several pieces and rounds.
SMALL = {"MSCOMM_PLAN_PIECE_BYTES": "1024", "MSCOMM_PLAN_SLOT_BYTES": "65536"}

BODY = r'''
import itertools, ml_dtypes
plan_list = json.load(open(os.environ["TEST_PLANS"]))
DTYPES = os.environ.get("TEST_DTYPES", "float16,bfloat16,float32,float64,int8,int32,int64,uint8").split(",")
COUNTS = [int(c) for c in os.environ.get("TEST_COUNTS", "1,7,1003,6007").split(",")]
if os.environ.get("TEST_RANKS_PER_HOST"):  # emulate several hosts: shm within, TCP between
    os.environ["MSCOMM_HOST_ID"] = f"host{RANK // int(os.environ['TEST_RANKS_PER_HOST'])}"
comm = mscomm.init()
N, me = comm.size, comm.rank
fail = []
GUARD = 16

def dt(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)

def data(rank, count, d, op="sum"):
    v = (np.arange(count) * 7 + rank * 3) % 11
    return (v % 2 + 1).astype(d) if op == "prod" else v.astype(d)

def reference(coll, xs, op, d, count):
    st = np.stack(xs).astype(np.int64 if d.kind in "iu" else np.float64)
    if coll == "allgather":
        return np.concatenate(xs)
    r = {"sum": st.sum(0), "max": st.max(0), "min": st.min(0), "prod": st.prod(0),
         "avg": (np.trunc(st.sum(0) / N) if d.kind in "iu" else st.sum(0) / N)}[op]
    if coll == "reduce_scatter":
        r = r[me * count:(me + 1) * count]
    return r.astype(d)

def guarded(n, d):
    """An output with guard elements on both sides (to catch writes outside it)."""
    whole = np.full(n + 2 * GUARD, 99, d)
    return whole, whole[GUARD:GUARD + n]

def run_case(p, coll, d, count, op, inplace, case):
    n_in = count if coll == "allgather" else N * count if coll == "reduce_scatter" else count
    n_out = N * count if coll == "allgather" else count
    xs = [data(r, n_in, d, op) for r in range(N)]
    want = reference(coll, xs, op, d, count)
    call = getattr(mscomm, coll)
    if inplace:  # the collective's own in-place layout
        if coll == "allreduce":
            whole, buf = guarded(n_out, d); buf[:] = xs[me]; got = call(buf, op, plan=p); out = buf
        elif coll == "allgather":
            whole, out = guarded(n_out, d); out[me * count:(me + 1) * count] = xs[me]
            got = call(out[me * count:(me + 1) * count], out=out, plan=p)
        else:
            whole, buf = guarded(n_in, d); buf[:] = xs[me]
            out = buf[me * count:(me + 1) * count]; got = call(buf, op, out=out, plan=p)
            whole[GUARD:GUARD + n_in][:me * count] = 99; whole[GUARD:GUARD + n_in][(me + 1) * count:] = 99
    else:
        whole, out = guarded(n_out, d)
        x = xs[me].copy()
        got = call(x, op, out=out, plan=p) if coll != "allgather" else call(x, out=out, plan=p)
        if not np.array_equal(x, xs[me]):
            fail.append(case + ": input changed")
    guard_ok = np.all(whole[:GUARD].astype(np.float64) == 99) and np.all(whole[-GUARD:].astype(np.float64) == 99)
    if not guard_ok:
        fail.append(case + ": wrote outside the output")
    g, w = out.astype(np.float64), want.astype(np.float64)
    ok = np.allclose(g, w, rtol=1e-2, atol=1e-2) if (op == "avg" and d.kind == "f") else np.array_equal(g, w)
    if not ok:
        bad = np.flatnonzero(g != w)[:4]
        fail.append(f"{case}: mismatch at {bad.tolist()} got {g[bad].tolist()} want {w[bad].tolist()}")

for entry in plan_list:
    # keys starting with "_" are this test's settings for the plan, not part of it
    p = comm.load_plan({k: v for k, v in entry.items() if not k.startswith("_")})
    if p._core.in_place_safe != (entry["name"] != "exchange2" or me != 0):
        fail.append(f"{entry['name']}: in_place_safe is {p._core.in_place_safe} on rank {me}")
    coll = entry["collective"]
    dtypes, counts = entry.get("_dtypes", DTYPES), entry.get("_counts", COUNTS)
    for name, count in itertools.product(dtypes, counts):
        d = dt(name)
        for inplace in (False, True):
            run_case(p, coll, d, count, "sum", inplace, f"{entry['name']}/{coll}/{name}/{count}/{'inplace' if inplace else 'out'}")
    if coll != "allgather" and entry.get("_ops", True):
        for op in ["prod", "min", "max", "avg"]:
            run_case(p, coll, dt("float32"), counts[-1], op, False, f"{entry['name']}/{coll}/float32/{counts[-1]}/{op}")
            run_case(p, coll, dt("int32"), counts[0], op, True, f"{entry['name']}/{coll}/int32/{counts[0]}/{op}")
emit({"fail": fail[:20], "plans": len(plan_list)})
comm.close()
'''


def _named(plan: dict, name: str) -> dict:
    plan = dict(plan)
    plan["name"] = name
    return plan


def forestcoll_plans(topo, tag: str, dtypes: str = "float32,bfloat16", counts: str = "7,2003") -> list[dict]:
    """The generator's three plans for ``topo``; the test runs them with fewer dtypes than the ring
    (the dtype handling is the same for every plan) and the other ops only on the first."""
    schedule = generate(topo)
    out = [_named(build_plan(schedule, c), f"{tag}-{c}") for c in COLLECTIVES]
    for p in out:
        p.update(_dtypes=dtypes.split(","), _counts=[int(c) for c in counts.split(",")], _ops=False)
    return out


def _zoo_small() -> dict[int, list]:
    """Zoo topologies of 2-8 ranks, by rank count: the shipped files and small generator instances."""
    tops: dict[int, list] = {}
    for t in zoo.zoo_topologies():
        if 2 <= t.num_ranks <= 8:
            tops.setdefault(t.num_ranks, []).append((t, t.name))
    for t, tag in [(zoo.ring(3), "ring3"), (zoo.star(3), "star3"), (zoo.ring(4, bidirectional=False), "uniring4"),
                   (zoo.full_mesh(4), "mesh4"), (zoo.torus((2, 2)), "torus2x2"), (zoo.ring(2), "ring2")]:
        tops.setdefault(t.num_ranks, []).append((t, tag))
    return tops


def run_plans(nranks: int, plan_list: list[dict], transport: str, env: dict | None = None, timeout: float = 120):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(plan_list, f)
        path = f.name
    try:
        extra = {**SMALL, "TEST_PLANS": path, **(env or {})}
        extra.update(transports_env(transport))
        job = run_job(nranks, BODY, env=extra, timeout=timeout).check_ok()
    finally:
        os.unlink(path)
    for r in job.ranks:
        res = r.results[-1]
        assert res["plans"] == len(plan_list)
        assert not res["fail"], f"rank {r.rank}: " + "\n".join(res["fail"])


@pytest.mark.parametrize("nranks,transport", [(2, "shm"), (2, "tcp"), (3, "shm"), (3, "tcp"), (4, "shm"),
                                              (4, "2perhost")],
                         ids=lambda v: f"{v}ranks" if isinstance(v, int) else v)
def test_executor_matches_numpy(nranks, transport):
    """Ring plans and the ForestColl plans of the small zoo topologies, every dtype, both layouts
    (2perhost: two emulated hosts of two ranks, so one plan runs over shared memory and TCP)."""
    plan_list = [ring_plan(c, nranks, f"ring{nranks}-{c}") for c in COLLECTIVES]
    if nranks == 2:  # not in-place safe: runs in place from a copy of the input
        plan_list.append(exchange_plan())
    for topo, tag in _zoo_small().get(nranks, []):
        plan_list += forestcoll_plans(topo, tag)
    env = {} if transport == "shm" else {"TEST_DTYPES": "float16,float32,int8,int64", "TEST_COUNTS": "1,7,6007"}
    if nranks == 4 and transport == "shm":  # every dtype ran at 2 and 3 ranks already
        env = {"TEST_DTYPES": "bfloat16,float32,int8,uint8"}
    if transport != "shm":  # the transport moves bytes alike for every dtype
        for p in plan_list[3:]:
            p["_dtypes"] = ["float32"]
    run_plans(nranks, plan_list, transport, env)


def test_executor_zoo_8_ranks():
    """Every plan generated for the shipped 8-rank zoo topologies (fewer dtypes: 8 ranks on 2 cores)."""
    plan_list = []
    for topo, tag in _zoo_small()[8]:
        plan_list += forestcoll_plans(topo, tag, "float32", "5,2003")
    plan_list[0]["_ops"] = True
    run_plans(8, plan_list, "shm", timeout=240)


def test_executor_large_tcp_pieces():
    """Default piece and slot sizes over TCP with a buffer of several pieces (4 MiB + remainder)."""
    plan_list = [ring_plan("allreduce", 2, "ring2")]
    run_plans(2, plan_list, "tcp", {"MSCOMM_PLAN_PIECE_BYTES": "1048576", "MSCOMM_PLAN_SLOT_BYTES": "16777216",
                                    "TEST_DTYPES": "float32", "TEST_COUNTS": "3,1048579"})


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.data())
def test_executor_random_topologies(data):
    """ForestColl plans of random small topologies (hypothesis draws them), grouped into one job per size."""
    from forestcoll.conftest import small_topologies

    by_size: dict[int, list] = {}
    for i in range(4):
        topo = data.draw(small_topologies(max_compute=4, max_switches=1))
        by_size.setdefault(topo.num_ranks, []).extend(forestcoll_plans(topo, f"random{i}", "float32", "1,2003"))
    for n, plan_list in sorted(by_size.items()):
        run_plans(n, plan_list, "shm")


# ---- broken plans ---------------------------------------------------------------------------

def _broken() -> dict[str, tuple[dict, bool]]:
    """name -> (plan, whether the C++ loader refuses it too: contributions are the validator's job)."""
    base = ring_plan("allreduce", 2, "ring2")
    out: dict[str, tuple[dict, bool]] = {}
    p = copy.deepcopy(base)  # rank 1's final reduce forgets its own input: a missing contribution
    step = next(s for s in p["ranks"][1]["steps"] if s["op"] == "reduce")
    step["srcs"] = step["srcs"][1:]
    out["missing contribution"] = (p, False)
    p = copy.deepcopy(base)  # the same input twice
    step = next(s for s in p["ranks"][0]["steps"] if s["op"] == "reduce")
    step["srcs"] = [step["srcs"][0]] + step["srcs"]
    out["double contribution"] = (p, False)
    p = copy.deepcopy(base)  # both ranks wait before anyone signals
    for entry in p["ranks"]:
        steps = entry["steps"]
        w = next(i for i, s in enumerate(steps) if s["op"] == "wait")
        steps.insert(0, steps.pop(w))
    out["deadlock"] = (p, True)
    p = copy.deepcopy(base)
    p["ranks"][1]["steps"][0]["src"] = ["input", 9]
    out["out-of-range chunk"] = (p, True)
    p = copy.deepcopy(base)
    p["ranks"][0]["steps"][0]["peer"] = 5
    out["unknown peer"] = (p, True)
    out["wrong world size"] = (ring_plan("allreduce", 3, "ring3"), True)
    return out


BROKEN_BODY = r'''
import copy
cases = json.load(open(os.environ["TEST_PLANS"]))
comm = mscomm.init()
x = np.ones(64, np.float32)
res = {}
for name, (plan, cpp) in cases.items():
    for validate in ([True, False] if cpp else [True]):
        try:
            if validate:
                mscomm.allreduce(x.copy(), out=np.zeros(64, np.float32), plan=plan)
            else:
                comm.load_plan(plan, validate=False)
            res[f"{name}/{validate}"] = "accepted"
        except ValueError as e:
            res[f"{name}/{validate}"] = f"{type(e).__name__}: {e}"
# the communicator still works after every refusal
out = mscomm.allreduce(np.ones(8, np.float32), out=np.zeros(8, np.float32))
res["after"] = out.tolist()
# wrong collective: an allgather plan given to allreduce
import sys; sys.path.insert(0, "tests")
from plan_builders import exchange_plan, ring_plan
try:
    mscomm.allreduce(x.copy(), out=np.zeros(64, np.float32), plan=ring_plan("allgather", SIZE))
    res["wrong collective"] = "accepted"
except ValueError as e:
    res["wrong collective"] = str(e)
# ranks loading different plans
mine = ring_plan("allreduce", SIZE) if RANK == 0 else json.loads(os.environ["TEST_OTHER"])
try:
    comm.load_plan(mine)
    res["different plans"] = "accepted"
except ValueError as e:
    res["different plans"] = str(e)
# counts that differ across ranks: every rank fails (no hang)
p = comm.load_plan(ring_plan("allreduce", SIZE))
try:
    n = 64 if RANK == 0 else 96
    mscomm.allreduce(np.ones(n, np.float32), out=np.zeros(n, np.float32), plan=p, timeout=20)
    res["counts differ"] = "accepted"
except Exception as e:
    res["counts differ"] = f"{type(e).__name__}: {e}"
emit(res)
'''


def test_broken_plans_refused_on_every_rank():
    cases = _broken()
    for name, (plan, _) in cases.items():
        if name != "wrong world size":
            with pytest.raises(PlanError):
                validate_plan(plan)
    # a plan that differs: a ForestColl allreduce on the 2-ring
    other = {k: v for k, v in forestcoll_plans(zoo.ring(2), "fc2")[0].items() if not k.startswith("_")}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cases, f)
        path = f.name
    try:
        job = run_job(2, BROKEN_BODY, env={"TEST_PLANS": path, "TEST_OTHER": json.dumps(other)}, timeout=90).check_ok()
    finally:
        os.unlink(path)
    for r in job.ranks:
        res = r.results[-1]
        for key, msg in res.items():
            if key == "after":
                assert msg == [2.0] * 8
                continue
            assert msg != "accepted", f"rank {r.rank}: {key} was accepted"
        for name in ("missing contribution", "double contribution"):  # found at the end: names the output
            assert "rank" in res[f"{name}/True"] and "output[" in res[f"{name}/True"], res[f"{name}/True"]
        for name in ("deadlock", "out-of-range chunk", "unknown peer"):
            for key in (f"{name}/True", f"{name}/False"):
                assert "rank" in res[key] and "step" in res[key], (key, res[key])
        assert "step 0" in res["out-of-range chunk/False"] and "input[9]" in res["out-of-range chunk/False"]
        assert "peer 5" in res["unknown peer/False"]
        assert "deadlock" in res["deadlock/False"] and "step 0" in res["deadlock/False"]
        assert "3 ranks" in res["wrong world size/True"] and "3 ranks" in res["wrong world size/False"]
        assert "allgather plan" in res["wrong collective"]
        assert "different plans" in res["different plans"]
        assert "arguments differ" in res["counts differ"]


# ---- the C++ loader on a fuzzed corpus ------------------------------------------------------

def _mutate(obj, rng: random.Random):
    """One random change somewhere in a JSON value: a number, a type, a key, a list entry."""
    if isinstance(obj, dict) and obj and rng.random() < 0.8:
        key = rng.choice(list(obj))
        if rng.random() < 0.15:
            del obj[key]
        else:
            obj[key] = _mutate(obj[key], rng)
        return obj
    if isinstance(obj, list) and obj and rng.random() < 0.8:
        i = rng.randrange(len(obj))
        r = rng.random()
        if r < 0.1:
            obj.pop(i)
        elif r < 0.2:
            obj.insert(i, copy.deepcopy(obj[rng.randrange(len(obj))]))
        else:
            obj[i] = _mutate(obj[i], rng)
        return obj
    return rng.choice([-1, 0, 1, 2, 3, 7, 2 ** 31, -2 ** 63, 2 ** 62, 1.5, "input", "output", "scratch", "put",
                       "wait", "signal", "reduce", "copy", None, True, [], {}, ["scratch", 0], ["output", 1],
                       [["input", 0]], obj if not isinstance(obj, (int, str)) else obj + obj])


def test_loader_survives_fuzzed_plans():
    """Mutations of valid plans go to the C++ loader directly (no Python validation): each one is
    accepted or refused with InvalidArgument, and the process never crashes."""
    rng = random.Random(20261202)
    seeds = [ring_plan(c, n) for c in COLLECTIVES for n in (2, 3)] + forestcoll_plans(zoo.star(3), "star3")
    seeds = [json.loads(plans.executor_json(p)) for p in seeds]
    accepted = refused = 0
    for i in range(3000):
        plan = _mutate(copy.deepcopy(rng.choice(seeds)), rng)
        for _ in range(rng.randrange(3)):
            plan = _mutate(plan, rng)
        text = json.dumps(plan)
        if i % 10 == 0:  # damaged text, not just damaged values
            cut = rng.randrange(len(text))
            text = text[:cut] + rng.choice(["", "]", "}", "{", "\"", "\\", "-", "1e999", "[" * 200]) + text[cut + 1:]
        n = plan.get("num_ranks") if isinstance(plan, dict) and isinstance(plan.get("num_ranks"), int) else 2
        n = n if 1 <= n <= 8 else 2
        for rank in range(n):
            try:
                _core.check_plan(text, rank, n)
                accepted += 1
            except InvalidArgument:
                refused += 1
    assert refused > 1000 and accepted > 50, (accepted, refused)
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        _core.check_plan("[" * 10000, 0, 2)
    with pytest.raises(InvalidArgument, match="is for 3 ranks but the communicator has 2"):
        _core.check_plan(plans.executor_json(ring_plan("allreduce", 3)), 0, 2)


FUZZ_RUN_BODY = r'''
corpus = json.load(open(os.environ["TEST_PLANS"]))
comm = mscomm.init()
GUARD = 64
ran = 0
for i, plan in enumerate(corpus):
    try:
        p = comm.load_plan(plan, validate=False)
    except ValueError:
        continue
    coll = plan["collective"]
    count = 37
    n_in = count if coll == "allgather" else SIZE * count if coll == "reduce_scatter" else count
    n_out = SIZE * count if coll == "allgather" else count
    whole = np.full(n_out + 2 * GUARD, 7, np.float32)
    x = np.ones(n_in, np.float32)
    call = getattr(mscomm, coll)
    call(x, out=whole[GUARD:GUARD + n_out], plan=p, timeout=20)
    assert np.all(whole[:GUARD] == 7) and np.all(whole[-GUARD:] == 7), f"plan {i} wrote outside the output"
    assert np.all(x == 1), f"plan {i} wrote into the input"
    ran += 1
emit(ran)
'''


def test_accepted_mutants_run_within_bounds():
    """Mutated plans the C++ loader accepts (wrong results allowed) run without touching anything
    outside their buffers: guards around the output, the input unchanged."""
    rng = random.Random(7)
    seeds = [json.loads(plans.executor_json(ring_plan(c, 2))) for c in COLLECTIVES]
    corpus = []
    for _ in range(4000):
        plan = _mutate(copy.deepcopy(rng.choice(seeds)), rng)
        try:
            for r in range(2):
                _core.check_plan(json.dumps(plan), r, 2)
        except InvalidArgument:
            continue
        if plan not in seeds and plan not in corpus:
            corpus.append(plan)
        if len(corpus) >= 25:
            break
    assert len(corpus) >= 5
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(corpus, f)
        path = f.name
    try:
        job = run_job(2, FUZZ_RUN_BODY, env={"TEST_PLANS": path}, timeout=90).check_ok()
    finally:
        os.unlink(path)
    assert job[0].results[-1] >= 5


def test_bench_runs_a_plan(tmp_path, capfd):
    """``mscomm-bench allreduce --plan ring.json``: the executor runs the plan (by name) and checks it."""
    from mscomm.bench.cli import main

    path = tmp_path / "ring2.json"
    path.write_text(json.dumps(ring_plan("allreduce", 2, "ring2")))
    out = tmp_path / "report.json"
    assert main(["allreduce", "-n", "2", "--min", "4K", "--max", "64K", "--factor", "16", "--check", "--plan",
                 str(path), "--json", str(out), "--reps", "2", "--warmup", "1", "--timeout", "120"]) == 0
    ms = {r["backend"]: r for r in json.loads(out.read_text())["results"]}["mscomm"]
    assert [r["wrong"] for r in ms["rows"] + ms["in_place"]] == [0, 0, 0, 0]
    assert set(ms["algorithms"].values()) == {"plan:ring2"}
    assert "plan:ring2" in capfd.readouterr().out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_loaded_plan_is_a_row_of_the_selection_table(tmp_path, transport):
    """comm.load_plan adds plan:<name> to the table: listed by mscomm.algorithms, taken by the
    automatic choice for the sizes it declares (and not outside them), selected by
    MSCOMM_ALLREDUCE_ALGO; a plan for another world size is refused by name."""
    plan = ring_plan("allreduce", 2, "ring2")
    plan["sizes"] = [4096, 1 << 20]
    path = tmp_path / "ring2.json"
    path.write_text(json.dumps(plan))
    job = run_job(2, r'''
import sys
comm = mscomm.init(timeout=60)
p = comm.load_plan(sys.argv[1])
out = {}
for n in [1024, 100000, 1 << 19]:   # 4 KB and 400 KB: inside the sizes; 2 MB: outside
    x = np.full(n, comm.rank + 1.0, np.float32)
    rows = mscomm.algorithms("allreduce", x, comm=comm)
    out[n] = [r.name for r in rows if r.chosen][0]
    mscomm.allreduce(x)
    assert np.all(x == 3.0), x[:4]
out["listed"] = [r.name for r in mscomm.algorithms("allreduce", comm=comm)]
emit(out)
''', env=transports_env(transport), args=[str(path)], timeout=100).check_ok()
    res = job.results(0)[0]
    assert res["1024"] == "plan:ring2" and res["100000"] == "plan:ring2", res
    assert res[str(1 << 19)] != "plan:ring2", res
    assert res["listed"][0] == "plan:ring2", res
    env = {**transports_env(transport), "MSCOMM_ALLREDUCE_ALGO": "plan:ring2"}
    job = run_job(2, r'''
import sys
comm = mscomm.init(timeout=60)
x = np.full(3 << 20, comm.rank + 1.0, np.float32)
try:
    mscomm.allreduce(x)
    emit("ran before loading")
except mscomm.InvalidArgument as e:
    emit(str(e))
comm.load_plan(sys.argv[1])
mscomm.allreduce(x)
emit(bool(np.all(x == 3.0)))
emit([r.name for r in mscomm.algorithms("allreduce", x, comm=comm) if r.chosen])
''', env=env, args=[str(path)], timeout=100).check_ok()
    first, ok, chosen = job.results(0)
    assert "unknown allreduce algorithm 'plan:ring2'" in first and "comm.load_plan" in first, first
    assert ok is True and chosen == ["plan:ring2"]


def test_plans_module_doctest():
    import doctest

    from mscomm import plans as module

    assert doctest.testmod(module).failed == 0
