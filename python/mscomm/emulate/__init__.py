"""Several hosts on one machine: a topology's hosts as network namespaces joined by shaped veths.

``mscomm-run --emulate TOPOLOGY.json [--scale F] -- command`` starts one rank per compute node of
the topology inside its host's namespace (see docs/emulation.md). The pieces:

- :mod:`.fabric`: topology -> hosts, bridges and cables with their rates (pure, no root needed);
- :mod:`.netns`: build and remove them with iproute2, and sweep what killed launchers left;
- :mod:`.runner`: start, supervise and end the ranks, removing the fabric on every way out;
- :mod:`.linkrate`: measure each host pair's rate with mscomm's own TCP transport.
"""
from .fabric import EmulationError, Fabric, plan_fabric
from .netns import check_environment, leftovers, sweep
from .runner import DEFAULT_SCALE, load_fabric, run_emulated

__all__ = ["DEFAULT_SCALE", "EmulationError", "Fabric", "check_environment", "leftovers", "load_fabric",
           "plan_fabric", "run_emulated", "sweep"]
