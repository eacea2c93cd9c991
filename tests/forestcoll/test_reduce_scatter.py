"""Reduce-scatter on asymmetric fabrics: its own optimum on the reversed graph, puts on real
links, no link over capacity; allreduce = reduce-scatter + allgather."""
from fractions import Fraction

import pytest
from conftest import brute_force_x_star, small_topologies
from hypothesis import HealthCheck, given, settings

from mscomm.forestcoll import generate_collective
from mscomm.forestcoll.plan import build_plan, expand_plan, validate_plan
from mscomm.forestcoll.schedule import reverse_topology
from mscomm.topology import load


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_topologies(max_compute=5, max_switches=2))
def test_reduce_scatter_optimum_is_the_reversed_min_cut_and_plans_fit_the_links(topo):
    coll = generate_collective(topo, "allreduce")
    rs, ag = coll.phases["reduce_scatter"], coll.phases["allgather"]
    assert rs.x_star == brute_force_x_star(reverse_topology(topo))
    assert ag.x_star == brute_force_x_star(topo)
    N = topo.num_ranks
    assert coll.algbw() == N / (1 / rs.x + 1 / ag.x)
    for collective in ("reduce_scatter", "allreduce"):
        plan = build_plan(coll, collective)
        validate_plan(plan, topology=topo)  # symbolic run, links and per-link load
        full = expand_plan(plan)
        names = topo.compute
        routes = {}
        for tree in full["trees"]:
            for p, c, via in tree["edges"]:
                pair = (p, c) if tree["phase"] == "allgather" else (c, p)
                routes.setdefault(pair, []).append(via)
        for entry in full["ranks"]:
            for step in entry["steps"]:
                if step["op"] == "put":
                    pair = (entry["rank"], step["peer"])
                    assert pair in routes
                    for via in routes[pair]:
                        hops = [names[pair[0]], *via, names[pair[1]]]
                        assert all(arc in topo.links for arc in zip(hops, hops[1:]))


def test_one_way_ring_allreduce_uses_only_existing_links():
    topo = load("topology/uniring8.json")
    coll = generate_collective(topo, "allreduce")
    plan = build_plan(coll, "allreduce")
    validate_plan(plan, topology=topo)
    assert coll.phases["reduce_scatter"].x == Fraction(1, 7)
    assert coll.time(8e9) == pytest.approx(2 * 8e9 / (8 * (1 / 7) * 1e9))
