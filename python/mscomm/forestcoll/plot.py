"""Drawing of a schedule (needs matplotlib: ``pip install mscomm[plot]``).

Up to :data:`DETAIL_UP_TO` ranks: every node and link, each link coloured by the share of its
bandwidth the schedule uses and labelled ``load/bandwidth`` GB/s, plus the first trees drawn
along their switch paths. Larger fabrics get a per-box summary: one node per box (its ranks
and box-local switches) and per shared switch, arcs labelled with total bandwidth and load.
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Union

DETAIL_UP_TO = 64


def check_plot_dependencies() -> None:
    """Raise ImportError (with the install hint) unless matplotlib and networkx import."""
    try:
        import matplotlib  # noqa: F401
        import networkx  # noqa: F401
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib "
                          "(or pip install 'mscomm[plot]')") from None


def _phases(schedule) -> dict:
    return dict(schedule.phases) if hasattr(schedule, "phases") else {schedule.direction: schedule}


def _load(sched) -> dict:
    """GB/s per real link (reduce-scatter schedules live on the reversed fabric)."""
    load = sched.link_load()
    if sched.direction == "reduce_scatter":
        return {(v, u): x for (u, v), x in load.items()}
    return load


def plot_schedule(schedule, path: Union[str, Path], max_trees: int = 5) -> None:
    """Save a PNG of a :class:`Schedule` or :class:`Collective` (see module docstring)."""
    check_plot_dependencies()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = _phases(schedule)
    name, main = next(iter(phases.items()))
    topo = main.topology if main.direction == "allgather" else schedule.topology \
        if hasattr(schedule, "topology") else main.topology
    links = topo.links
    load = _load(main)
    if topo.num_ranks > DETAIL_UP_TO:
        fig, ax = plt.subplots(figsize=(12, 9))
        _summary(ax, topo, load, f"{topo.name} {name}: x = {main.x} GB/s, k = {main.k}")
    else:
        roots = sorted({t.root for t in main.trees})[:max_trees]
        cols = min(3, len(roots) + 1)
        rows = math.ceil((len(roots) + 1) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 5.5 * rows), squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        pos = _layout(topo)
        ax = axes.flat[0]
        ax.set_title(f"{topo.name} {name}: x = {main.x} GB/s, k = {main.k}\n"
                     "colour: load / bandwidth; label: load/bw GB/s")
        _nodes(ax, topo, pos)
        cmap = plt.get_cmap("viridis")
        for (u, v), bw in links.items():
            use = float(load.get((u, v), 0) / bw)
            _arc(ax, pos[u], pos[v], color=cmap(use), width=0.5 + 2.5 * float(bw) /
                 float(max(links.values())))
            if len(links) <= 120:
                mx, my = _mid(pos[u], pos[v], 0.12)
                ax.text(mx, my, f"{float(load.get((u, v), 0)):.3g}/{float(bw):.3g}",
                        fontsize=5, ha="center")
        for ax, root in zip(list(axes.flat)[1:], roots):
            tree = main.trees_of(root)[0]
            ax.set_title(f"{name} tree of root {root} ({topo.compute[root]}), "
                         f"multiplicity {tree.multiplicity}")
            _nodes(ax, topo, pos, highlight=topo.compute[root])
            for p, c, via in tree.edges:
                hops = [topo.compute[p], *via, topo.compute[c]]
                if main.direction == "reduce_scatter":
                    hops = hops[::-1]
                for a, b in zip(hops, hops[1:]):
                    _arc(ax, pos[a], pos[b], color="tab:red", width=1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _summary(ax, topo, load, title: str) -> None:
    """Boxes and shared switches as nodes; arcs with total bandwidth and load."""
    group = {c: f"box {topo.host_of(c)}" for c in topo.compute}
    box_of = dict(group)
    for w in topo.switches:  # a switch cabled to ranks of one box only belongs to the box
        hosts = {box_of[x] for (a, b) in topo.links for x in (a, b) if w in (a, b)
                 and x in box_of}
        group[w] = hosts.pop() if len(hosts) == 1 else w
    bw, ld = defaultdict(float), defaultdict(float)
    for (u, v), b in topo.links.items():
        gu, gv = group[u], group[v]
        if gu != gv:
            bw[(gu, gv)] += float(b)
            ld[(gu, gv)] += float(load.get((u, v), 0))
    names = sorted(set(group.values()), key=lambda g: (not g.startswith("box"), g))
    boxes = [g for g in names if g.startswith("box")]
    others = [g for g in names if not g.startswith("box")]
    pos = {g: (math.cos(2 * math.pi * i / len(boxes)), math.sin(2 * math.pi * i / len(boxes)))
           for i, g in enumerate(boxes)}
    pos.update({g: (0.4 * math.cos(2 * math.pi * i / max(1, len(others))),
                    0.4 * math.sin(2 * math.pi * i / max(1, len(others))))
                for i, g in enumerate(others)})
    ax.set_axis_off()
    ax.set_title(title + "\nper box: arcs labelled load/bandwidth GB/s (box <-> shared switch)")
    for (a, b), total in bw.items():
        _arc(ax, pos[a], pos[b], color="tab:gray", width=0.4)
        if len(bw) <= 200:
            mx, my = _mid(pos[a], pos[b], 0.3)
            ax.text(mx, my, f"{ld[(a, b)]:.4g}/{total:.4g}", fontsize=5, ha="center")
    for g, (x, y) in pos.items():
        ax.plot([x], [y], "s" if g in others else "o", color="tab:gray" if g in others
                else "tab:blue", markersize=8)
        ax.text(x, y + 0.04, g, fontsize=6, ha="center")


def _nodes(ax, topo, pos, highlight=None) -> None:
    for c in topo.compute:
        ax.plot(*pos[c], "o", color="tab:red" if c == highlight else "tab:blue", markersize=5)
    for w in topo.switches:
        ax.plot(*pos[w], "s", color="tab:gray", markersize=4)
    if topo.num_ranks <= 32:
        for n in topo.nodes:
            ax.text(pos[n][0], pos[n][1] + 0.03, n, fontsize=5, ha="center")


def _arc(ax, a, b, color, width) -> None:
    ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="-|>", color=color, lw=width,
                                                    shrinkA=3, shrinkB=3,
                                                    connectionstyle="arc3,rad=0.08"))


def _mid(a, b, frac) -> tuple[float, float]:
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    dx, dy = b[0] - a[0], b[1] - a[1]
    return mx - frac * dy * 0.2, my + frac * dx * 0.2


def _layout(topo) -> dict:
    """Ranks on a circle grouped by host, each switch at the mean of its neighbours."""
    N = topo.num_ranks
    pos = {name: (math.cos(2 * math.pi * i / N), math.sin(2 * math.pi * i / N))
           for i, name in enumerate(topo.compute)}
    for w in topo.switches:
        near = [pos[v] for (u, v) in topo.links if u == w and v in pos] or [(0.0, 0.0)]
        scale = 0.6 if len(near) < N else 0.0
        pos[w] = (scale * sum(p[0] for p in near) / len(near),
                  scale * sum(p[1] for p in near) / len(near))
    for w in topo.switches:  # switches cabled only to switches: mean of those
        if pos[w] == (0.0, 0.0):
            near = [pos[v] for (u, v) in topo.links if u == w and pos.get(v)]
            if near:
                pos[w] = (0.5 * sum(p[0] for p in near) / len(near),
                          0.5 * sum(p[1] for p in near) / len(near))
    return pos
