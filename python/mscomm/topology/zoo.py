"""Topology generators and the zoo of named systems shipped with the package.

Every generator returns a validated :class:`~mscomm.topology.model.Topology`. Bandwidths are GB/s
per direction; every cable is full duplex (two links of equal bandwidth).
"""
from __future__ import annotations

import itertools
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from .errors import TopologyError
from .model import Topology

Number = Union[int, Fraction, str]


class _Builder:
    """Collects nodes and duplex cables, then makes a Topology."""

    def __init__(self) -> None:
        self.compute: list[str] = []
        self.switches: list[str] = []
        self.links: dict[tuple[str, str], Fraction] = {}
        self.hosts: dict[str, int] = {}
        self.kinds: dict[str, str] = {}

    def gpu(self, name: str, host: Optional[int] = None) -> str:
        self.compute.append(name)
        if host is not None:
            self.hosts[name] = host
        return name

    def switch(self, name: str, kind: str) -> str:
        self.switches.append(name)
        self.kinds[name] = kind
        return name

    def cable(self, a: str, b: str, bw: Number) -> None:
        for arc in ((a, b), (b, a)):
            self.links[arc] = self.links.get(arc, Fraction(0)) + Fraction(bw)

    def build(self, name: str, description: str) -> Topology:
        return Topology(name, tuple(self.compute), tuple(self.switches), self.links,
                        self.hosts, self.kinds, description)


def _check_count(what: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TopologyError(f"{what} must be an integer >= {minimum}, got {value!r}")


def _dgx_boxes(b: "_Builder", n_boxes: int, nvlink_bw: int, nic_bw: int, fabric: list) -> None:
    """Boxes of 8 GPUs on one NVSwitch node each; with several boxes, GPU i's own NIC sits on
    fabric switch i % len(fabric)."""
    for box in range(n_boxes):
        nvs = b.switch(f"b{box}.nvswitch", "nvswitch")
        for i in range(8):
            gpu = b.gpu(f"b{box}.gpu{i}", box)
            b.cable(gpu, nvs, nvlink_bw)
            if fabric:
                nic = b.switch(f"b{box}.nic{i}", "nic")
                b.cable(gpu, nic, nic_bw)
                b.cable(nic, fabric[i % len(fabric)], nic_bw)


def dgx_a100(n_boxes: int = 1) -> Topology:
    """DGX-A100 boxes as modelled by the ForestColl paper.

    Per box 8 GPUs, each 300 GB/s to one NVSwitch node. With more than one box each GPU also has
    its own NIC (25 GB/s GPU<->NIC and NIC<->IB switch); even NICs sit on IB switch 0, odd NICs
    on IB switch 1.
    """
    _check_count("n_boxes", n_boxes)
    b = _Builder()
    ib = [b.switch(f"ib{i}", "ib") for i in range(2)] if n_boxes > 1 else []
    _dgx_boxes(b, n_boxes, 300, 25, ib)
    return b.build(f"dgx-a100x{n_boxes}", f"{n_boxes} DGX-A100 box(es), ForestColl paper model")


def dgx_h100(n_boxes: int = 1) -> Topology:
    """DGX-H100 boxes, rail-optimized.

    Per box 8 GPUs, each 450 GB/s (18 NVLink4 links) to one NVSwitch node. With more than one
    box each GPU has its own 400 Gb/s NIC (50 GB/s GPU<->NIC and NIC<->rail switch); NIC i of
    every box sits on rail switch i.
    """
    _check_count("n_boxes", n_boxes)
    b = _Builder()
    rails = [b.switch(f"rail{i}", "ib") for i in range(8)] if n_boxes > 1 else []
    _dgx_boxes(b, n_boxes, 450, 50, rails)
    return b.build(f"dgx-h100x{n_boxes}", f"{n_boxes} DGX-H100 box(es), rail-optimized IB")


# xGMI links of one MI250 node: (gcd, peer, number of 50 GB/s links), each pair listed once.
MI250_XGMI = (
    (0, 1, 4), (0, 4, 2), (0, 8, 1), (1, 5, 1), (1, 9, 1), (1, 10, 1), (2, 3, 4), (2, 6, 1),
    (2, 9, 1), (2, 10, 1), (3, 7, 2), (3, 11, 1), (4, 5, 4), (4, 6, 1), (5, 6, 1), (5, 7, 1),
    (6, 7, 4), (8, 9, 4), (8, 12, 2), (9, 13, 1), (10, 11, 4), (10, 14, 1), (11, 15, 2),
    (12, 13, 4), (12, 14, 1), (13, 14, 1), (13, 15, 1), (14, 15, 4),
)


def mi250(n_boxes: int = 1) -> Topology:
    """MI250 nodes as modelled by the ForestColl paper.

    Per node 16 GCDs joined by xGMI (50 GB/s per link per direction, 7 links per GCD). With
    more than one node every GCD also has 16 GB/s each way to one global IB switch.
    """
    _check_count("n_boxes", n_boxes)
    b = _Builder()
    ib = b.switch("ib", "ib") if n_boxes > 1 else None
    for box in range(n_boxes):
        gcds = [b.gpu(f"b{box}.gcd{i}", box) for i in range(16)]
        for i, j, count in MI250_XGMI:
            b.cable(gcds[i], gcds[j], 50 * count)
        if ib:
            for gcd in gcds:
                b.cable(gcd, ib, 16)
    return b.build(f"mi250x{n_boxes}", f"{n_boxes} MI250 node(s), ForestColl paper model")


def ring(n: int, bw: Number = 1, bidirectional: bool = True) -> Topology:
    """``n`` compute nodes in a ring; one-way rings have a link only from i to i+1."""
    _check_count("n", n, 2)
    b = _Builder()
    nodes = [b.gpu(f"gpu{i}") for i in range(n)]
    for i in range(n):
        u, v = nodes[i], nodes[(i + 1) % n]
        if bidirectional:
            b.cable(u, v, bw)
        else:
            b.links[(u, v)] = b.links.get((u, v), Fraction(0)) + Fraction(bw)
    kind = "bidirectional" if bidirectional else "one-way"
    return b.build(f"ring{n}" if bidirectional else f"uniring{n}", f"{kind} ring of {n}, {bw} GB/s")


def torus(dims: Sequence[int] = (4, 4), bw: Number = 1) -> Topology:
    """A torus of compute nodes with the given dimensions, full-duplex links of ``bw`` GB/s."""
    for d in dims:
        _check_count("torus dimension", d, 2)
    b = _Builder()
    coords = list(itertools.product(*(range(d) for d in dims)))
    name = {c: b.gpu("gpu" + "_".join(map(str, c))) for c in coords}
    cables = set()
    for c in coords:
        for axis, d in enumerate(dims):
            nxt = list(c)
            nxt[axis] = (c[axis] + 1) % d
            cable = frozenset((c, tuple(nxt)))
            if cable not in cables:
                cables.add(cable)
                b.cable(name[c], name[tuple(nxt)], bw)
    shape = "x".join(map(str, dims))
    return b.build(f"torus{shape}", f"{shape} torus, {bw} GB/s links")


def star(n: int, bw: Number = 1) -> Topology:
    """``n`` compute nodes behind one switch, ``bw`` GB/s each way per node."""
    _check_count("n", n, 2)
    b = _Builder()
    sw = b.switch("switch", "switch")
    for i in range(n):
        b.cable(b.gpu(f"gpu{i}"), sw, bw)
    return b.build(f"star{n}", f"{n} nodes behind one switch, {bw} GB/s")


def full_mesh(n: int, bw: Number = 1) -> Topology:
    """``n`` compute nodes with a ``bw`` GB/s full-duplex link between every pair."""
    _check_count("n", n, 2)
    b = _Builder()
    nodes = [b.gpu(f"gpu{i}") for i in range(n)]
    for u, v in itertools.combinations(nodes, 2):
        b.cable(u, v, bw)
    return b.build(f"mesh{n}", f"{n}-node full mesh, {bw} GB/s")


def fat_tree(leaves: int = 4, hosts_per_leaf: int = 4, spines: int = 2, host_bw: Number = 25,
             uplink_bw: Optional[Number] = None) -> Topology:
    """A two-level leaf-spine fat tree with one compute node per host.

    Each leaf has one cable to every spine of ``uplink_bw`` GB/s; by default
    ``host_bw * hosts_per_leaf / spines`` (non-blocking). Smaller uplinks oversubscribe it.
    """
    _check_count("leaves", leaves)
    _check_count("hosts_per_leaf", hosts_per_leaf)
    _check_count("spines", spines)
    if uplink_bw is None:
        uplink_bw = Fraction(host_bw) * hosts_per_leaf / spines
    b = _Builder()
    spine = [b.switch(f"spine{s}", "switch") for s in range(spines)] if leaves > 1 else []
    for leaf in range(leaves):
        sw = b.switch(f"leaf{leaf}", "switch")
        for h in range(hosts_per_leaf):
            b.cable(b.gpu(f"l{leaf}.h{h}", leaf), sw, host_bw)
        for sp in spine:
            b.cable(sw, sp, uplink_bw)
    return b.build(f"fat-tree{leaves}x{hosts_per_leaf}",
                   f"leaf-spine fat tree: {leaves} leaves x {hosts_per_leaf} hosts, "
                   f"{spines} spines")


def two_tier(box: Topology, n_boxes: int, nic_bw: Number = 25, switches: int = 1) -> Topology:
    """``n_boxes`` copies of ``box``, each compute node behind its own NIC.

    NIC i of every box is cabled (``nic_bw`` GB/s each way, also GPU<->NIC) to global switch
    ``i % switches``; ``switches=1`` is a single flat network switch.
    """
    _check_count("n_boxes", n_boxes)
    _check_count("switches", switches)
    b = _Builder()
    net = [b.switch(f"net{i}", "switch") for i in range(switches)] if n_boxes > 1 else []
    for k in range(n_boxes):
        prefix = f"b{k}." if n_boxes > 1 else ""
        for c in box.compute:
            b.gpu(prefix + c, k)
        for w in box.switches:
            b.switch(prefix + w, box.kinds.get(w, "switch"))
        for (u, v), bw in box.links.items():
            b.links[(prefix + u, prefix + v)] = bw
        for i, c in enumerate(box.compute if net else ()):
            nic = b.switch(f"{prefix}nic{i}", "nic")
            b.cable(prefix + c, nic, nic_bw)
            b.cable(nic, net[i % switches], nic_bw)
    return b.build(f"{box.name}x{n_boxes}", f"{n_boxes} x {box.name} behind NICs of {nic_bw} GB/s")


def emulated_cluster(name: str, nic_bw: Sequence[Number], ranks_per_host: int = 1, intra_bw: Number = 300,
                     leaves: int = 1, uplink_bw: Optional[Number] = None) -> Topology:
    """Hosts for ``mscomm-run --emulate``: host h has ``ranks_per_host`` ranks and one NIC of
    ``nic_bw[h]`` GB/s.

    With several ranks per host they sit on a shared-memory hub (``intra_bw`` GB/s each, NVLink
    class) in front of the NIC. ``leaves=1``: every NIC on one switch; more: hosts split evenly
    (in order) over leaf switches, each with one ``uplink_bw`` GB/s cable to one spine.
    """
    _check_count("ranks_per_host", ranks_per_host)
    _check_count("leaves", leaves)
    if len(nic_bw) < 2 or len(nic_bw) % leaves:
        raise TopologyError(f"{name}: need >= 2 hosts split evenly over {leaves} leaves, got {len(nic_bw)}")
    b = _Builder()
    if leaves == 1:
        edge = [b.switch("net", "switch")]
    else:
        spine = b.switch("spine", "switch")
        edge = [b.switch(f"leaf{i}", "switch") for i in range(leaves)]
        for leaf in edge:
            b.cable(leaf, spine, uplink_bw if uplink_bw is not None else sum(map(Fraction, nic_bw)) / leaves)
    per_leaf = len(nic_bw) // leaves
    for h, bw in enumerate(nic_bw):
        ranks = [b.gpu(f"h{h}.r{i}", h) for i in range(ranks_per_host)]
        port = ranks[0]
        if ranks_per_host > 1:
            port = b.switch(f"h{h}.shm", "shm")
            for r in ranks:
                b.cable(r, port, intra_bw)
        b.cable(port, edge[h // per_leaf], bw)
    nics = ", ".join(str(Fraction(x)) for x in nic_bw)
    shape = f"{leaves} leaves (uplink {uplink_bw} GB/s) under one spine" if leaves > 1 else "one switch"
    return b.build(name, f"emulation: {len(nic_bw)} hosts x {ranks_per_host} rank(s), NICs {nics} GB/s, {shape}")


def emulated_topologies() -> list[Topology]:
    """The small fabrics made for ``mscomm-run --emulate`` on one machine (docs/emulation.md)."""
    half = Fraction(25, 2)
    return [emulated_cluster("emu-equal2x2", [25, 25], 2),
            emulated_cluster("emu-equal4x1", [25] * 4, 1),
            emulated_cluster("emu-unequal4x1", [25, 25, 25, half], 1),
            emulated_cluster("emu-unequal4x2", [25, 25, 25, half], 2),
            emulated_cluster("emu-2tier4x2", [25] * 4, 2, leaves=2, uplink_bw=half)]


GENERATORS: dict[str, Callable[..., Topology]] = {
    "dgx-a100": dgx_a100, "dgx-h100": dgx_h100, "mi250": mi250, "ring": ring, "torus": torus,
    "star": star, "mesh": full_mesh, "fat-tree": fat_tree,
}


def zoo_dir() -> Path:
    """Folder of the shipped zoo JSON files: ``mscomm/zoo`` in a wheel, else the repository's
    ``topology/`` folder."""
    try:
        installed = Path(str(resources.files("mscomm") / "zoo"))
        if installed.is_dir():
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[3] / "topology"


def zoo_names() -> list[str]:
    """Names of the shipped zoo topologies."""
    return sorted(p.stem for p in zoo_dir().glob("*.json"))


def boxes_generator(name: str) -> Optional[Callable[[int], Topology]]:
    """The generator that takes a box count for ``name`` ("dgx-a100", "mi250", "dgx-h100")."""
    return {"dgx-a100": dgx_a100, "dgx-h100": dgx_h100, "mi250": mi250}.get(name)


def zoo_topologies() -> list[Topology]:
    """The topologies written to the zoo folder by :func:`write_zoo`."""
    tops = [dgx_a100(n) for n in (1, 2, 4, 8, 16)]
    tops += [dgx_h100(n) for n in (1, 2, 4, 8, 16)]
    tops += [mi250(n) for n in (1, 2, 4, 8)]
    tops += [ring(8), ring(8, bidirectional=False), torus((4, 4)), star(8), full_mesh(8),
             fat_tree(4, 4, 2)]
    tops += emulated_topologies()
    return tops


def write_zoo(folder: Union[str, Path, None] = None) -> list[Path]:
    """(Re)write the zoo JSON files; returns the paths written."""
    from .io import save

    folder = Path(folder) if folder else zoo_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for topo in zoo_topologies():
        path = folder / f"{topo.name}.json"
        save(topo, path)
        paths.append(path)
    return paths


def get(spec: str, n_boxes: Optional[int] = None) -> Topology:
    """Resolve a topology given on a command line.

    ``spec`` is a JSON file path, a zoo name ("dgx-a100x2", see :func:`zoo_names`), a box
    generator name with ``n_boxes`` ("dgx-a100", "dgx-h100", "mi250"), or "local" (this machine,
    see :func:`mscomm.topology.local.detect`). With ``n_boxes`` and a JSON file, the file is
    taken as one box and replicated behind NICs (:func:`two_tier`).

    Raises
    ------
    TopologyError
        If nothing of that name exists, or the file is invalid.
    """
    from .io import load
    from .local import detect

    if spec == "local":
        return detect(hosts=n_boxes)
    generator = boxes_generator(spec)
    if generator is not None:
        return generator(1 if n_boxes is None else n_boxes)
    path = Path(spec)
    if not path.is_file():
        path = zoo_dir() / f"{spec}.json"
    if not path.is_file():
        raise TopologyError(f"no topology file or zoo topology named {spec!r}; zoo: "
                            f"{', '.join(zoo_names() + ['dgx-a100', 'dgx-h100', 'mi250', 'local'])}")
    topo = load(path)
    return two_tier(topo, n_boxes) if n_boxes else topo


if __name__ == "__main__":
    for p in write_zoo():
        print(p)
