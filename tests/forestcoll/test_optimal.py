"""x*, k and U: closed forms and a brute-force cut oracle."""
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings

from conftest import brute_force_x_star, small_topologies
from mscomm.forestcoll.network import IntTopology
from mscomm.forestcoll.optimal import (fixed_k, optimal_throughput, tree_capacities,
                                       trees_per_root)
from mscomm.topology import zoo


def x_star(topo, flow_func="scipy"):
    return optimal_throughput(IntTopology.of(topo), flow_func).x_star


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13])
@pytest.mark.parametrize("b", [1, 7, Fraction(25, 2)], ids=["b1", "b7", "b12.5"])
def test_closed_forms(n, b):
    assert x_star(zoo.ring(n, b)) == 2 * Fraction(b) / (n - 1)
    assert x_star(zoo.ring(n, b, bidirectional=False)) == Fraction(b) / (n - 1)
    assert x_star(zoo.star(n, b)) == Fraction(b) / (n - 1)
    assert x_star(zoo.full_mesh(n, b)) == b


def test_paper_models():
    # One box: the NVSwitch star; more boxes: the IB links into the last box bind.
    assert x_star(zoo.dgx_a100(1)) == Fraction(300, 7)
    assert x_star(zoo.dgx_a100(2)) == Fraction(325, 15)  # a single GPU's ingress
    assert x_star(zoo.dgx_a100(16)) == Fraction(8 * 25, 8 * 15)
    assert x_star(zoo.mi250(1)) == Fraction(150, 7)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_topologies())
def test_x_star_matches_brute_force_cuts(topo):
    best = optimal_throughput(IntTopology.of(topo))
    assert best.x_star == brute_force_x_star(topo)
    # The reported cut is binding.
    inside = {IntTopology.of(topo).names[i] for i in best.cut}
    out = sum(b for (u, v), b in topo.links.items() if u in inside and v not in inside)
    assert out / len(inside & set(topo.compute)) == best.x_star


@settings(max_examples=40, deadline=None)
@given(small_topologies(max_compute=4, max_switches=1))
def test_networkx_and_scipy_agree(topo):
    assert x_star(topo, "networkx") == x_star(topo, "scipy")


@settings(max_examples=150, deadline=None)
@given(small_topologies())
def test_k_makes_every_link_hold_whole_trees(topo):
    net = IntTopology.of(topo)
    x = optimal_throughput(net).x_star
    k, U = trees_per_root(net, x)
    assert k / U == x
    assert all((U * b).denominator == 1 for b in topo.links.values())
    # No smaller k has that property.
    for smaller in range(1, k):
        assert any((smaller / x * b).denominator != 1 for b in topo.links.values())
    assert sum(tree_capacities(net, U).values()) == sum(U * b for b in topo.links.values())


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_fixed_k_never_beats_x_star_and_reaches_it_at_optimal_k(k):
    net = IntTopology.of(zoo.dgx_a100(2))
    x = optimal_throughput(net).x_star
    U, caps = fixed_k(net, k, x)
    assert k / U <= x
    k_opt, U_opt = trees_per_root(net, x)
    assert fixed_k(net, k_opt, x)[0] == U_opt


def test_fixed_k_rejects_bad_k():
    net = IntTopology.of(zoo.ring(4))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        fixed_k(net, 0, Fraction(1))
