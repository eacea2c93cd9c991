"""Max-flow on small integer networks, behind one signature so the solver is a parameter.

A network is given as arrays ``src, dst, cap`` (parallel arcs are summed) over nodes
``0..n-1``. ``flow_func="native"`` (default) runs the C++ core's Dinic
(:class:`mscomm._core.FlowNetwork`, int64, built once per network); ``"scipy"`` runs scipy's
compiled Dinic (a sparse matrix per network, 32-bit capacities); ``"networkx"`` runs networkx's
preflow-push (pure Python, slow, no limit). scipy and networkx are independent checkers used by
the tests.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

INT32_MAX = 2**31 - 1
FLOW_FUNCS = ("native", "scipy", "networkx")


def native_network(n: int = 0):
    """An empty :class:`mscomm._core.FlowNetwork` with ``n`` nodes (needs the built core)."""
    from .. import _core

    return _core.FlowNetwork(n)


class Network:
    """A directed network with integer capacities, ready for repeated max-flow calls.

    Parameters
    ----------
    n : int
        Number of nodes.
    src, dst, cap : sequences of int
        Arcs and their capacities (parallel arcs are summed; zero-capacity arcs are ignored).
    flow_func : {"native", "scipy", "networkx"}
        Solver. scipy needs capacities below 2**31 and falls back to networkx otherwise.
    """

    def __init__(self, n: int, src: Sequence[int], dst: Sequence[int], cap: Sequence[int],
                 flow_func: str = "native") -> None:
        if flow_func not in FLOW_FUNCS:
            raise ValueError(f"flow_func must be one of {', '.join(FLOW_FUNCS)}, got {flow_func!r}")
        self.n = n
        src, dst, cap = (np.asarray(a, dtype=np.int64) for a in (src, dst, cap))
        keep = (cap > 0) & (src != dst)
        self.src, self.dst, self.cap = src[keep], dst[keep], cap[keep]
        big = self.cap.size and int(self.cap.max()) > INT32_MAX // max(1, n)
        self.flow_func = "networkx" if big and flow_func == "scipy" else flow_func
        if self.flow_func == "native":
            self._native = native_network(n)
            if self.src.size:
                self._native.add_arcs(self.src, self.dst, self.cap)
        elif self.flow_func == "scipy":
            from scipy.sparse import csr_matrix

            self._csr = csr_matrix((self.cap.astype(np.int32), (self.src, self.dst)),
                                   shape=(n, n))
            self._csr.sum_duplicates()
        else:
            import networkx as nx

            self._nx = nx.DiGraph()
            self._nx.add_nodes_from(range(n))
            for u, v, c in zip(self.src.tolist(), self.dst.tolist(), self.cap.tolist()):
                if self._nx.has_edge(u, v):
                    self._nx[u][v]["capacity"] += c
                else:
                    self._nx.add_edge(u, v, capacity=c)

    def max_flow(self, s: int, t: int) -> int:
        """Value of a maximum s-t flow."""
        if self.flow_func == "native":
            return int(self._native.max_flow(s, t))
        if self.flow_func == "scipy":
            from scipy.sparse.csgraph import maximum_flow

            return int(maximum_flow(self._csr, s, t).flow_value)
        from networkx.algorithms.flow import preflow_push

        import networkx as nx

        return int(nx.maximum_flow_value(self._nx, s, t, flow_func=preflow_push))

    def arc_flows(self, s: int, t: int) -> dict[tuple[int, int], int]:
        """Flow on each arc (parallel arcs merged) of one maximum s-t flow."""
        if self.flow_func == "native":
            self._native.max_flow(s, t)
            out: dict[tuple[int, int], int] = {}
            for u, v, f in zip(self.src.tolist(), self.dst.tolist(),
                               self._native.arc_flows().tolist()):
                if f > 0:
                    out[(u, v)] = out.get((u, v), 0) + f
            return out
        if self.flow_func == "scipy":
            from scipy.sparse.csgraph import maximum_flow

            flow = maximum_flow(self._csr, s, t).flow.tocoo()
            return {(int(u), int(v)): int(f) for u, v, f in zip(flow.row, flow.col, flow.data)
                    if f > 0}
        import networkx as nx
        from networkx.algorithms.flow import preflow_push

        _, flow = nx.maximum_flow(self._nx, s, t, flow_func=preflow_push)
        return {(u, v): f for u, out in flow.items() for v, f in out.items() if f > 0}

    def min_cut(self, s: int, t: int) -> tuple[int, frozenset[int]]:
        """Value of a minimum s-t cut and the source side of one (the nodes the residual
        network reaches from s)."""
        if self.flow_func == "native":
            value = int(self._native.max_flow(s, t))
            return value, frozenset(np.flatnonzero(self._native.source_side()).tolist())
        if self.flow_func == "scipy":
            from scipy.sparse.csgraph import breadth_first_order, maximum_flow

            result = maximum_flow(self._csr, s, t)
            residual = (self._csr - result.flow).tocsr()
            residual.data[residual.data < 0] = 0
            residual.eliminate_zeros()
            reached = breadth_first_order(residual, s, directed=True, return_predecessors=False)
            return int(result.flow_value), frozenset(int(x) for x in reached)
        import networkx as nx
        from networkx.algorithms.flow import preflow_push

        value, (side, _) = nx.minimum_cut(self._nx, s, t, flow_func=preflow_push)
        return int(value), frozenset(side)

    def first_short_sink(self, s: int, sinks: Sequence[int], need: int):
        """The first ``t`` of ``sinks`` whose max-flow from ``s`` is below ``need`` and that
        flow, or None when all reach ``need``."""
        if self.flow_func == "native":
            t, flow = self._native.first_short_sink(s, list(sinks), need)
            return None if t < 0 else (t, int(flow))
        for t in sinks:
            flow = self.max_flow(s, t)
            if flow < need:
                return t, flow
        return None
