"""Drawing of a topology and its trees (needs matplotlib: ``pip install mscomm[plot]``)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Union

from .schedule import Schedule


def plot_schedule(schedule: Schedule, path: Union[str, Path], max_trees: int = 8) -> None:
    """Save a PNG: the topology (left) and the first tree of up to ``max_trees`` roots.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib "
                          "(or pip install 'mscomm[plot]')") from None
    import networkx as nx

    topo = schedule.topology
    graph = nx.DiGraph(list(topo.links))
    pos = _layout(schedule)
    roots = sorted({t.root for t in schedule.trees})[:max_trees]
    cols = min(3, len(roots) + 1)
    rows = math.ceil((len(roots) + 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    ax = axes.flat[0]
    ax.set_title(f"{topo.name}: x* = {schedule.x_star} GB/s, k = {schedule.k}")
    nx.draw_networkx_nodes(graph, pos, nodelist=list(topo.compute), node_size=60,
                           node_color="tab:blue", ax=ax)
    nx.draw_networkx_nodes(graph, pos, nodelist=list(topo.switches), node_size=40,
                           node_shape="s", node_color="tab:gray", ax=ax)
    nx.draw_networkx_edges(graph, pos, width=0.4, arrows=False, alpha=0.5, ax=ax)
    for ax, root in zip(list(axes.flat)[1:], roots):
        tree = schedule.trees_of(root)[0]
        edges = [(topo.compute[p], topo.compute[c]) for p, c, _ in tree.edges]
        sub = nx.DiGraph(edges)
        ax.set_title(f"root {root} ({topo.compute[root]}), multiplicity {tree.multiplicity}")
        nx.draw_networkx_nodes(sub, pos, nodelist=list(topo.compute), node_size=40,
                               node_color="tab:blue", ax=ax)
        nx.draw_networkx_nodes(sub, pos, nodelist=[topo.compute[root]], node_size=90,
                               node_color="tab:red", ax=ax)
        nx.draw_networkx_edges(sub, pos, width=0.8, arrowsize=6, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _layout(schedule: Schedule) -> dict:
    """Ranks on a circle grouped by host, each switch at the mean of its neighbours."""
    topo = schedule.topology
    N = topo.num_ranks
    pos = {name: (math.cos(2 * math.pi * i / N), math.sin(2 * math.pi * i / N))
           for i, name in enumerate(topo.compute)}
    for w in topo.switches:
        near = [pos[v] for (u, v) in topo.links if u == w and v in pos] or [(0.0, 0.0)]
        scale = 0.6 if len(near) < N else 0.0
        pos[w] = (scale * sum(p[0] for p in near) / len(near),
                  scale * sum(p[1] for p in near) / len(near))
    return pos
