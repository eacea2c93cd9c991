"""Runs a benchmark module inside a peer's own venv: ``PYTHON run.py MODULE ARGS...``.

The peer's venv has numpy and the peer (mpi4py, torch and DeepSpeed) but not mscomm's compiled
core, so ``mscomm`` is registered here as a bare package over this checkout's sources: its
``__init__`` (which loads the core) never runs, and the worker imports only the pure-Python bench
modules (sizes, specs, timing).
"""

import os
import runpy
import sys
import types

if __name__ == "__main__":
    package = types.ModuleType("mscomm")
    package.__path__ = [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]
    sys.modules["mscomm"] = package
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
