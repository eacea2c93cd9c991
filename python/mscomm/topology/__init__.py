"""Topology model for ForestColl: compute and switch nodes joined by links with exact
bandwidths, read from JSON (docs/topology-format.md), plus a zoo of real systems.

>>> from mscomm.topology import zoo
>>> zoo.dgx_a100(2).num_ranks
16
"""
from .errors import TopologyError
from .io import dumps, load, loads, save
from .model import Topology
from .zoo import get

__all__ = ["Topology", "TopologyError", "load", "loads", "save", "dumps", "get"]
