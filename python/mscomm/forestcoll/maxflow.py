"""Max-flow on small integer networks, behind one signature so the solver is a parameter.

A network is given as arrays ``src, dst, cap`` (parallel arcs are summed) over nodes
``0..n-1``. ``flow_func="scipy"`` (default) runs scipy's compiled Dinic; ``"networkx"`` runs
networkx's preflow-push (pure Python, slower, no 32-bit limit; used as a cross-check in tests).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

INT32_MAX = 2**31 - 1


class Network:
    """A directed network with integer capacities, ready for repeated max-flow calls.

    Parameters
    ----------
    n : int
        Number of nodes.
    src, dst, cap : sequences of int
        Arcs and their capacities (parallel arcs are summed; zero-capacity arcs are ignored).
    flow_func : {"scipy", "networkx"}
        Solver. scipy needs capacities below 2**31 and falls back to networkx otherwise.
    """

    def __init__(self, n: int, src: Sequence[int], dst: Sequence[int], cap: Sequence[int],
                 flow_func: str = "scipy") -> None:
        if flow_func not in ("scipy", "networkx"):
            raise ValueError(f"flow_func must be 'scipy' or 'networkx', got {flow_func!r}")
        self.n = n
        src, dst, cap = (np.asarray(a, dtype=np.int64) for a in (src, dst, cap))
        keep = (cap > 0) & (src != dst)
        self.src, self.dst, self.cap = src[keep], dst[keep], cap[keep]
        big = self.cap.size and int(self.cap.max()) > INT32_MAX // max(1, n)
        self.flow_func = "networkx" if big else flow_func
        if self.flow_func == "scipy":
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
        if self.flow_func == "scipy":
            from scipy.sparse.csgraph import maximum_flow

            return int(maximum_flow(self._csr, s, t).flow_value)
        from networkx.algorithms.flow import preflow_push

        import networkx as nx

        return int(nx.maximum_flow_value(self._nx, s, t, flow_func=preflow_push))

    def arc_flows(self, s: int, t: int) -> dict[tuple[int, int], int]:
        """Flow on each arc (parallel arcs merged) of one maximum s-t flow."""
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
