"""Invariants of every generated schedule (the schedule meets the bound exactly)."""
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import small_topologies
from mscomm.forestcoll import ScheduleError, Tree, generate
from mscomm.topology import zoo


def check_invariants(schedule):
    """Independent re-check of Schedule.verify's promises."""
    topo, N = schedule.topology, schedule.num_ranks
    assert Counter(t.root for t in schedule.trees for _ in range(t.multiplicity)) == \
        {r: schedule.k for r in range(N)}
    for tree in schedule.trees:
        assert tree.multiplicity >= 1
        assert sorted(child for _, child, _ in tree.edges) == sorted(set(range(N)) - {tree.root})
        depth = tree.depth()
        assert set(depth) == set(range(N))
    load = Counter()
    for tree in schedule.trees:
        for parent, child, path in tree.edges:
            hops = [topo.compute[parent], *path, topo.compute[child]]
            assert all(w in topo.switches for w in path)
            for arc in zip(hops, hops[1:]):
                load[arc] += tree.multiplicity
    for arc, trees in load.items():
        assert trees <= schedule.U * topo.links[arc], arc
    assert schedule.k / schedule.U == schedule.x


ZOO = [zoo.ring(6), zoo.ring(5, 3, bidirectional=False), zoo.star(6, 25), zoo.full_mesh(5),
       zoo.torus((3, 3)), zoo.fat_tree(3, 2, 2), zoo.fat_tree(2, 4, 2, uplink_bw=25),
       zoo.dgx_a100(1), zoo.dgx_a100(2), zoo.dgx_a100(4), zoo.dgx_h100(2), zoo.mi250(1),
       zoo.two_tier(zoo.ring(4, 10), 3, nic_bw=Fraction(5, 2), switches=2)]


@pytest.mark.parametrize("topo", ZOO, ids=lambda t: t.name)
def test_zoo_schedules_meet_the_bound(topo):
    schedule = generate(topo)
    assert schedule.x == schedule.x_star
    check_invariants(schedule)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_topologies(max_compute=5, max_switches=2))
def test_random_schedules_meet_the_bound(topo):
    schedule = generate(topo)
    assert schedule.x == schedule.x_star
    check_invariants(schedule)


@settings(max_examples=40, deadline=None)
@given(small_topologies(max_compute=4, max_switches=2), st.integers(1, 4))
def test_fixed_k_schedules(topo, k):
    schedule = generate(topo, k=k)
    assert schedule.k == k and schedule.x <= schedule.x_star
    check_invariants(schedule)


def test_networkx_flow_gives_a_valid_schedule():
    schedule = generate(zoo.dgx_a100(2), flow_func="networkx")
    assert schedule.x == Fraction(65, 3)
    check_invariants(schedule)


def test_fixed_k_on_dgx():
    schedule = generate(zoo.dgx_a100(2), k=1)
    assert schedule.k == 1 and schedule.x < schedule.x_star
    check_invariants(schedule)


def test_time_algbw_busbw():
    schedule = generate(zoo.star(4, 12))  # x* = 4 GB/s
    assert schedule.algbw("allgather") == 16 and schedule.busbw("allgather") == 12
    assert schedule.algbw("reduce_scatter") == 16
    assert schedule.algbw("allreduce") == 8 and schedule.busbw("allreduce") == 12
    assert schedule.time("allgather", 16e9) == pytest.approx(1.0)
    assert schedule.time("allreduce", 16e9) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="collective must be one of"):
        schedule.time("broadcast", 1)


def test_verify_catches_a_broken_schedule():
    schedule = generate(zoo.ring(4))
    tree = schedule.trees[0]
    short = Tree(tree.root, tree.multiplicity, tree.edges[:-1])
    broken = type(schedule)(schedule.topology, schedule.x, schedule.x_star, schedule.k,
                            schedule.U, schedule.cut, (short,) + schedule.trees[1:])
    with pytest.raises(ScheduleError, match="spans 3 of 4 ranks"):
        broken.verify()
    heavy = Tree(tree.root, tree.multiplicity + 5, tree.edges)
    broken = type(schedule)(schedule.topology, schedule.x, schedule.x_star, schedule.k,
                            schedule.U, schedule.cut, (heavy,) + schedule.trees[1:])
    with pytest.raises(ScheduleError, match="trees, expected"):
        broken.verify()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(small_topologies(max_compute=5, max_switches=3))
def test_greedy_splitting_alone_gives_valid_schedules(monkeypatch, topo):
    from mscomm.forestcoll import splitting

    monkeypatch.setattr(splitting._Splitter, "propose", lambda self, w: None)
    schedule = generate(topo)
    assert schedule.x == schedule.x_star
    check_invariants(schedule)


def test_greedy_splitting_on_dgx(monkeypatch):
    from mscomm.forestcoll import splitting

    monkeypatch.setattr(splitting._Splitter, "propose", lambda self, w: None)
    check_invariants(generate(zoo.dgx_a100(2)))


def test_identical_boxes_pack_one_root_per_orbit_and_map_the_rest(monkeypatch):
    from mscomm.forestcoll import packing

    calls = {"mapped": 0, "refused": 0}
    original = packing._Shift.images

    def images(self, *args):
        out = original(self, *args)
        calls["mapped" if out is not None else "refused"] += 1
        return out

    monkeypatch.setattr(packing._Shift, "images", images)
    topo = zoo.dgx_a100(4)
    fast = generate(topo)  # verify() runs inside: spans, multiplicities, link loads
    assert calls["mapped"] == 8 and calls["refused"] == 0  # one root per GPU slot
    slow = generate(topo, symmetry=False)
    assert (fast.x, fast.k) == (slow.x, slow.k) == (slow.x_star, slow.k)


def test_symmetry_falls_back_to_the_general_path():
    schedule = generate(zoo.mi250(2))  # its first mapped orbit is refused
    assert schedule.x == schedule.x_star
