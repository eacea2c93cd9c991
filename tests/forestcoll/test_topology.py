"""Topology model, JSON format, zoo generators and error messages."""
import json
from fractions import Fraction

import pytest

from mscomm.topology import Topology, TopologyError, dumps, get, load, loads, zoo
from mscomm.topology.local import detect


def topo_json(**overrides):
    obj = {"format": "mscomm-topology", "version": 1, "name": "t",
           "compute": ["a", "b"], "switches": ["sw"],
           "links": [{"src": "a", "dst": "sw", "bw": 12.5}, {"src": "b", "dst": "sw", "bw": "25/2"}]}
    obj.update(overrides)
    return json.dumps(obj)


def test_bandwidths_are_exact_fractions():
    topo = loads(topo_json())
    assert topo.links[("a", "sw")] == Fraction(25, 2)
    assert topo.links[("sw", "b")] == Fraction(25, 2)
    assert loads(topo_json(links=[{"src": "a", "dst": "b", "bw": 0.1}])).links[("a", "b")] \
        == Fraction(1, 10)


def test_duplex_false_gives_one_link():
    links = [{"src": "a", "dst": "b", "bw": 1, "duplex": False},
             {"src": "b", "dst": "a", "bw": 2, "duplex": False}]
    topo = loads(topo_json(switches=[], links=links))
    assert topo.links == {("a", "b"): 1, ("b", "a"): 2}


@pytest.mark.parametrize("topo", zoo.zoo_topologies(), ids=lambda t: t.name)
def test_round_trip_and_shipped_files_match_generators(topo):
    assert loads(dumps(topo)) == topo
    assert load(zoo.zoo_dir() / f"{topo.name}.json") == topo


@pytest.mark.parametrize("text, message", [
    ("{not json", "malformed topology JSON"),
    ("[1, 2]", "must be a JSON object"),
    (topo_json(links=[{"src": "a", "dst": "ghost", "bw": 1}]), "unknown node 'ghost'"),
    (topo_json(links=[{"src": "a", "dst": "b", "bw": 0}]), "'a' -> 'b': bandwidth must be positive"),
    (topo_json(links=[{"src": "a", "dst": "b", "bw": -3}]), "bandwidth must be positive"),
    (topo_json(links=[{"src": "a", "dst": "b", "bw": "fast"}]), "bandwidth 'fast' is not a number"),
    (topo_json(links=[{"src": "a", "dst": "b"}]), "links[0]: must be an object"),
    (topo_json(links=[{"src": "a", "dst": "sw", "bw": 2}, {"src": "b", "dst": "sw", "bw": 1},
                      {"src": "a", "dst": "b", "bw": 1, "duplex": False},
                      {"src": "sw", "dst": "b", "bw": 1, "duplex": False}]),
     "switch 'sw': ingress 3 GB/s != egress 4 GB/s"),
    (topo_json(compute=["a", "b", "c"]), "compute node 'c' cannot be reached from compute node 'a'"),
    (topo_json(compute=["a", "b", "c"],
               links=[{"src": "a", "dst": "b", "bw": 1}, {"src": "c", "dst": "a", "bw": 1,
                                                          "duplex": False}]),
     "compute node 'c' cannot be reached"),
    (topo_json(compute=["a", "a"]), "node 'a' is listed twice"),
    (topo_json(compute=["a"]), "needs at least 2 compute nodes"),
    (topo_json(name=None, format="other"), "'format' must be 'mscomm-topology'"),
    (json.dumps({"name": "t", "compute": ["a", "b"]}), "missing the field 'links'"),
], ids=["malformed", "not-object", "unknown-node", "zero-bw", "negative-bw", "text-bw",
        "link-fields", "asymmetric-switch", "unreachable", "one-way-out", "duplicate", "one-rank",
        "format", "missing-links"])
def test_bad_input_names_the_problem(text, message):
    with pytest.raises(TopologyError) as info:
        loads(text)
    assert message in str(info.value)


def test_compute_node_that_reaches_nobody():
    links = {("a", "b"): Fraction(1), ("b", "a"): Fraction(1), ("c", "a"): Fraction(1)}
    with pytest.raises(TopologyError, match="'c' cannot be reached"):
        Topology("t", ("a", "b", "c"), (), links)
    links = {("a", "b"): Fraction(1), ("b", "a"): Fraction(1), ("a", "c"): Fraction(1)}
    with pytest.raises(TopologyError, match="'c' cannot reach compute node 'a'"):
        Topology("t", ("a", "b", "c"), (), links)


def test_missing_file_is_a_topology_error(tmp_path):
    with pytest.raises(TopologyError, match="cannot read topology file"):
        load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(topo_json(links=[{"src": "a", "dst": "x", "bw": 1}]))
    with pytest.raises(TopologyError, match="bad.json: link 'a' -> 'x': unknown node 'x'"):
        load(tmp_path / "bad.json")


def test_dgx_a100_model():
    one, two = zoo.dgx_a100(1), zoo.dgx_a100(2)
    assert one.num_ranks == 8 and one.switches == ("b0.nvswitch",)
    assert all(b == 300 for b in one.links.values()) and len(one.links) == 16
    assert two.num_ranks == 16
    assert two.links[("b1.gpu3", "b1.nic3")] == 25 and two.links[("b1.nic3", "ib1")] == 25
    assert two.links[("ib0", "b0.nic2")] == 25 and ("b0.nic2", "ib1") not in two.links
    assert two.hosts["b1.gpu0"] == 1


def test_mi250_model():
    one, two = zoo.mi250(1), zoo.mi250(2)
    assert one.num_ranks == 16 and not one.switches
    for gcd in one.compute:  # 7 xGMI links of 50 GB/s per GCD
        assert one.egress(gcd) == one.ingress(gcd) == 350
    assert one.links[("b0.gcd0", "b0.gcd1")] == 200 and one.links[("b0.gcd3", "b0.gcd7")] == 100
    assert two.links[("b1.gcd5", "ib")] == 16 and two.egress("b1.gcd5") == 366


def test_generators_shapes():
    assert zoo.dgx_h100(2).links[("b0.nic5", "rail5")] == 50
    assert len(zoo.torus((2, 3)).links) == 2 * (3 + 6)  # 3 cables along x, 2 rings of 3
    assert zoo.fat_tree(2, 3, 3).links[("leaf0", "spine2")] == 25
    box = zoo.full_mesh(3, 10)
    tt = zoo.two_tier(box, 2, nic_bw=5, switches=2)
    assert tt.num_ranks == 6 and tt.links[("b1.nic1", "net1")] == 5
    with pytest.raises(TopologyError, match="n_boxes must be an integer >= 1"):
        zoo.dgx_a100(0)


def test_get_resolves_names_files_and_generators(tmp_path):
    assert get("dgx-a100", 3).num_ranks == 24
    assert get("ring8").name == "ring8"
    path = tmp_path / "box.json"
    path.write_text(dumps(zoo.star(4)))
    assert get(str(path)).name == "star4"
    assert get(str(path), n_boxes=2).num_ranks == 8
    with pytest.raises(TopologyError, match="no topology file or zoo topology named 'nope'"):
        get("nope")


def test_local_detection_is_a_valid_topology():
    topo = detect(hosts=2, ranks_per_host=3)
    assert topo.num_ranks == 6 and set(topo.hosts.values()) == {0, 1}
    assert detect().num_ranks >= 2


@pytest.mark.parametrize("mutate, bad, near", [
    (lambda o: o["links"][0].update(duplx=False), "duplx", "duplex"),
    (lambda o: o.update(switchs=o.pop("switches")), "switchs", "switches"),
    (lambda o: o["compute"].__setitem__(0, {"name": o["compute"][0], "hots": 0}), "hots", "host"),
    (lambda o: o["switches"].__setitem__(0, {"name": "s", "knd": "nic"}), "knd", "kind"),
])
def test_unknown_keys_are_errors_naming_the_nearest_valid_one(mutate, bad, near):
    from mscomm.topology import TopologyError
    from mscomm.topology.io import from_dict

    obj = {"name": "t", "compute": ["a", "b"], "switches": ["s"],
           "links": [{"src": "a", "dst": "s", "bw": 1}, {"src": "b", "dst": "s", "bw": 1}]}
    mutate(obj)
    with pytest.raises(TopologyError, match=f"unknown key '{bad}' \\(did you mean '{near}'"):
        from_dict(obj)
