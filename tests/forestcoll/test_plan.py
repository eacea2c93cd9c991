"""Plan JSON: round trip, validator, and the symbolic run that proves each collective."""
import copy
import json

import pytest

from mscomm.forestcoll import generate
from mscomm.forestcoll.plan import PlanError, build_plan, load_plan, save_plan, validate_plan
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
    return build_plan(schedules["ring4"], "allreduce")


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
    (lambda p: p.update(format="x"), "not a mscomm-plan version 1 plan"),
    (lambda p: p.update(collective="broadcast"), "collective must be one of"),
    (lambda p: p.pop("trees"), "missing the field 'trees'"),
    (lambda p: p.update(k=0), "k must be an integer >= 1"),
    (lambda p: p.update(x_star="fast"), "x_star must be a positive fraction"),
    (lambda p: p["trees"][0].update(multiplicity=p["trees"][0]["multiplicity"] + 1),
     "tree multiplicities sum to"),
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
