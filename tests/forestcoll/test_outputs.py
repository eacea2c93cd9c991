"""Ring baseline, MSCCL XML and the mscomm-plan command line."""
import json
from collections import Counter
from fractions import Fraction
from xml.etree import ElementTree as ET

import pytest

from mscomm.forestcoll import generate
from mscomm.forestcoll.cli import main
from mscomm.forestcoll.msccl import plan_to_msccl
from mscomm.forestcoll.plan import build_plan, load_plan
from mscomm.forestcoll.ring import ring_throughput
from mscomm.topology import dumps, zoo


@pytest.mark.parametrize("n", [3, 6, 9])
def test_ring_baseline_closed_forms(n):
    assert ring_throughput(zoo.ring(n, 4)).x == Fraction(8, n - 1)  # both directions
    assert ring_throughput(zoo.star(n, 4)).x == Fraction(4, n - 1)


@pytest.mark.parametrize("topo", [zoo.dgx_a100(2), zoo.mi250(1), zoo.torus((3, 3))],
                         ids=lambda t: t.name)
def test_ring_never_beats_forestcoll(topo):
    assert 0 < ring_throughput(topo).x <= generate(topo).x_star


@pytest.mark.parametrize("collective", ["allgather", "reduce_scatter", "allreduce"])
def test_msccl_xml_pairs_every_send_with_a_receive(collective):
    plan = build_plan(generate(zoo.dgx_a100(2)), collective)
    algo = ET.fromstring(plan_to_msccl(plan))
    assert algo.get("ngpus") == "16" and algo.get("coll") == collective.replace("_", "")
    sends, recvs = Counter(), Counter()
    for gpu in algo.iter("gpu"):
        tbs = gpu.findall("tb")
        assert len({(tb.get("send"), tb.get("recv"), tb.get("chan")) for tb in tbs}) == len(tbs)
        for tb in tbs:
            for step in tb.findall("step"):
                if step.get("depid") != "-1":
                    target = tbs[int(step.get("depid"))].findall("step")[int(step.get("deps"))]
                    assert target.get("hasdep") == "1"
                if step.get("type") == "s":
                    sends[(gpu.get("id"), tb.get("send"))] += 1
                elif step.get("type") == "r":
                    recvs[(tb.get("recv"), gpu.get("id"))] += 1
    assert sends == recvs and sum(sends.values()) > 0


@pytest.mark.parametrize("collective", ["allgather", "reduce_scatter", "allreduce"])
@pytest.mark.parametrize("topo", [zoo.dgx_a100(2), zoo.ring(5)], ids=lambda t: t.name)
def test_msccl_xml_computes_the_collective_in_parallel(topo, collective):
    from msccl_sim import simulate

    plan = build_plan(generate(topo), collective)
    xml = plan_to_msccl(plan)
    algo = ET.fromstring(xml)
    assert int(algo.get("maxBytes")) > int(algo.get("minBytes")) > 0
    assert int(algo.get("nchannels")) > 1
    data, parallel = simulate(xml)
    N, k = plan["num_ranks"], plan["k"]
    for r in range(N):
        for g in range(plan["buffers"]["output"]):
            got = data[(r, "o", g)]
            if collective == "allgather":
                want = {(g // k, g % k): 1}
            elif collective == "reduce_scatter":
                want = {(q, r * k + g): 1 for q in range(N)}
            else:
                want = {(q, g): 1 for q in range(N)}
            assert dict(got) == want, (r, g)
    assert parallel > 0  # threadblocks of one GPU do run concurrently


def test_cli_prints_the_summary(capsys, tmp_path):
    out = tmp_path / "plan.json"
    assert main(["star8", "-c", "allgather", "-o", str(out), "--msccl",
                 str(tmp_path / "p.xml")]) == 0
    text = capsys.readouterr().out
    assert "x*          1/7 GB/s" in text and "ForestColl/ring = 1x" in text
    assert "generation" in text and "binding cut" in text
    assert load_plan(out, simulate=True)["collective"] == "allgather"
    assert (tmp_path / "p.xml").read_text().startswith("<algo")


def test_cli_json_and_fixed_k(capsys, tmp_path):
    path = tmp_path / "box.json"
    path.write_text(dumps(zoo.full_mesh(3, 10)))
    assert main([str(path), "--n-boxes", "2", "--k", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_ranks"] == 6 and summary["k"] == 1
    assert Fraction(summary["x"]) <= Fraction(summary["x_star"])
    assert summary["forestcoll_over_ring"] >= 1


def test_cli_reports_bad_topology(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"name": "t", "compute": ["a", "b"], "links": [{"src": "a", "dst": "c", '
                    '"bw": 1}]}')
    assert main([str(path)]) == 2
    assert "unknown node 'c'" in capsys.readouterr().err


def test_cli_plot(tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["ring8", "--plot", str(tmp_path / "t.png"), "--no-ring"]) == 0
    assert (tmp_path / "t.png").stat().st_size > 1000
