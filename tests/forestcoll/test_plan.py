"""Plan JSON: round trip, validator, and the symbolic run that proves each collective."""
import copy
import json

import pytest

from mscomm.forestcoll import generate
from mscomm.forestcoll.plan import (PlanError, build_plan, expand_plan, load_plan, rank_steps,
                                    save_plan, validate_plan)
from mscomm.topology import zoo

COLLECTIVES = ["allgather", "reduce_scatter", "allreduce"]
TOPOLOGIES = [zoo.ring(4), zoo.dgx_a100(2), zoo.mi250(1), zoo.fat_tree(2, 2, 2)]


@pytest.fixture(scope="module")
def schedules():
    return {t.name: generate(t) for t in TOPOLOGIES}


@pytest.mark.parametrize("collective", COLLECTIVES)
@pytest.mark.parametrize("name", [t.name for t in TOPOLOGIES])
def test_plan_round_trips_and_computes_the_collective(schedules, name, collective, tmp_path):
    plan = build_plan(schedules[name], collective)
    validate_plan(plan)  # includes the symbolic run
    save_plan(plan, tmp_path / "plan.json")
    assert load_plan(tmp_path / "plan.json", simulate=True) == json.loads(json.dumps(plan))


@pytest.fixture
def plan(schedules):
    return expand_plan(build_plan(schedules["ring4"], "allreduce"))


def first(plan, op):
    for entry in plan["ranks"]:
        for i, step in enumerate(entry["steps"]):
            if step["op"] == op:
                return entry, i
    raise AssertionError(op)


def test_missing_wait_is_caught(plan):
    entry, i = first(plan, "wait")
    del entry["steps"][i]
    with pytest.raises(PlanError, match="before waiting for that rank's signal|sends .* signals"):
        validate_plan(plan)


def test_swapped_steps_deadlock(plan):
    steps = plan["ranks"][1]["steps"]
    waits = [i for i, s in enumerate(steps) if s["op"] == "wait"]
    signals = [i for i, s in enumerate(steps) if s["op"] == "signal"]
    # Move the last signal before the first wait: its data is not there yet.
    steps.insert(waits[0], steps.pop(signals[-1]))
    with pytest.raises(PlanError):
        validate_plan(plan)


def test_wrong_reduction_is_caught(plan):
    entry, i = first(plan, "reduce")
    entry["steps"][i]["srcs"] = entry["steps"][i]["srcs"][:1]
    with pytest.raises(PlanError):
        validate_plan(plan)


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.update(format="x"), "not a mscomm-plan version 1 or 2 plan"),
    (lambda p: p.update(collective="broadcast"), "collective must be one of"),
    (lambda p: p.pop("trees"), "missing the field 'trees'"),
    (lambda p: p.update(k=0), "k must be an integer >= 1"),
    (lambda p: p.update(x_star="fast"), "x_star must be a positive fraction"),
    (lambda p: p["trees"][0].update(multiplicity=p["trees"][0]["multiplicity"] + 1),
     "tree multiplicities sum to"),
    (lambda p: p.update(switchs=[]), "unknown key 'switchs'"),
    (lambda p: p["trees"][0].update(rooot=0), "unknown key 'rooot' (did you mean 'root'"),
    (lambda p: p["ranks"][0]["steps"][0].update(peeer=1), "did you mean 'peer'"),
    (lambda p: p["trees"][0]["edges"].pop(), "spans 3 of 4 ranks"),
    (lambda p: p["ranks"][0]["steps"][0].update(op="jump"), "op must be one of"),
    (lambda p: p["ranks"][0]["steps"][0].update(peer=0), "peer 0 is not another rank"),
    (lambda p: p["ranks"][0]["steps"].insert(0, {"op": "copy", "src": ["input", 99],
                                                 "dst": ["output", 0]}), "out of range"),
    (lambda p: p["ranks"][0]["steps"].insert(0, {"op": "copy", "src": ["disk", 0],
                                                 "dst": ["output", 0]}), "is not [buffer, index]"),
    (lambda p: p["ranks"].pop(), "ranks must list ranks 0..3"),
])
def test_validator_names_the_problem(plan, mutate, message):
    bad = copy.deepcopy(plan)
    mutate(bad)
    with pytest.raises(PlanError) as info:
        validate_plan(bad)
    assert message in str(info.value)


def test_load_plan_rejects_malformed_json(tmp_path):
    (tmp_path / "p.json").write_text("{")
    with pytest.raises(PlanError, match="malformed plan JSON"):
        load_plan(tmp_path / "p.json")


def test_compact_plan_derives_the_same_steps_as_the_expanded_one(schedules):
    compact = build_plan(schedules["dgx-a100x2"], "allreduce")
    assert compact["version"] == 2 and "ranks" not in compact
    full = expand_plan(compact)
    assert full["version"] == 1
    validate_plan(full)
    for r in (0, 5, 15):
        one = rank_steps(compact, r)
        assert set(one) == {"rank", "collective", "num_ranks", "k", "buffers", "scratch_chunks",
                            "steps"}
        assert one["steps"] == full["ranks"][r]["steps"]
        assert one["scratch_chunks"] == full["ranks"][r]["scratch_chunks"]
        assert rank_steps(full, r) == one
    assert len(json.dumps(compact)) * 10 < len(json.dumps(full))


def test_plan_allows_name_and_sizes_and_rejects_bad_compact_fields(schedules):
    plan = build_plan(schedules["ring4"], "allgather", name="fc")
    plan["sizes"] = [1024, 1 << 20]
    validate_plan(plan)
    for mutate, message in [
            (lambda p: p["trees"][0]["parent"].__setitem__(1, 1), "not a rank"),
            (lambda p: p["trees"][0].update(phase="reduce_scatter"), "phase"),
            (lambda p: p.update(paths=[[7]]), "paths"),
            (lambda p: p["phases"]["allgather"].update(kk=1), "did you mean 'k'")]:
        bad = copy.deepcopy(plan)
        mutate(bad)
        with pytest.raises(PlanError, match=message):
            validate_plan(bad)


@pytest.mark.parametrize("collective", COLLECTIVES)
def test_ring_plan_runs_through_the_same_format(collective):
    from mscomm.forestcoll.ring import ring_plan

    for topo in (zoo.dgx_a100(2), zoo.ring(5)):
        plan = ring_plan(topo, collective)
        validate_plan(plan, topology=topo)  # symbolic run + links and loads
        assert plan["name"] == f"ring-{collective}"


def test_validate_plan_checks_links_and_load(schedules):
    from mscomm.forestcoll.schedule import reverse_topology

    topo = zoo.dgx_a100(2)
    plan = build_plan(schedules["dgx-a100x2"], "allgather")
    validate_plan(plan, topology=topo)
    fast = copy.deepcopy(plan)
    from fractions import Fraction
    fast["phases"]["allgather"]["x"] = str(2 * Fraction(plan["phases"]["allgather"]["x"]))
    with pytest.raises(PlanError, match="more than its"):
        validate_plan(fast, simulate=False, topology=topo)
    uni = zoo.ring(4)
    rank = {c: i for i, c in enumerate(uni.compute)}
    one_way = uni.replace(links={(u, v): b for (u, v), b in uni.links.items()
                                 if (rank[v] - rank[u]) % 4 == 1})
    wrong = build_plan(schedules["ring4"], "allgather")
    with pytest.raises(PlanError, match="not a link of the topology"):
        validate_plan(wrong, simulate=False, topology=one_way)
    assert reverse_topology(reverse_topology(one_way)).links == one_way.links


def test_cli_rank_and_ring(tmp_path, capsys):
    from mscomm.forestcoll.cli import main

    assert main(["ring8", "-c", "allreduce", "--rank", "2", "--no-ring"]) == 0
    steps = json.loads(capsys.readouterr().out)
    assert steps["rank"] == 2 and steps["steps"]
    out = tmp_path / "ring.json"
    assert main(["dgx-a100x2", "-c", "reduce_scatter", "--ring", "-o", str(out)]) == 0
    assert load_plan(out, simulate=True)["name"] == "ring-reduce_scatter"
