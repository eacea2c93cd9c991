"""Run a job's ranks inside an emulated fabric (``mscomm-run --emulate``).

Rank r runs in the namespace of its host in the topology; rank 0's host address is in the unique
id, so the bootstrap and the TCP transport cross the shaped cables, and ranks of one host find
each other through shared memory as on a real box. The fabric is removed on every way out: the
job ends, a rank fails, Ctrl-C or SIGTERM (the ``finally`` below), or the launcher is killed (its
ranks die with it through PR_SET_PDEATHSIG; the namespaces are swept at the next start).
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from typing import Sequence

from mscomm import launcher
from mscomm.topology import TopologyError, get

from .fabric import EmulationError, Fabric, plan_fabric
from .netns import Network, build, enter_namespace, teardown

DEFAULT_SCALE = 0.002  # 25 GB/s -> 50 MB/s (400 Mbit/s): well inside what tbf shapes exactly here
_BOOTSTRAP_PORT = 29517  # any port works: rank 0's namespace is new and empty
_MASTER_PORT = 29500


def load_fabric(topology: str, scale: float = DEFAULT_SCALE) -> Fabric:
    """The fabric of a topology file or zoo name; raises :class:`EmulationError`."""
    try:
        topo = get(topology)
    except TopologyError as exc:
        raise EmulationError(f"cannot emulate {topology!r}: {exc}") from None
    return plan_fabric(topo, scale)


def describe(fabric: Fabric) -> str:
    """A few lines saying what the emulation builds (printed by the launcher)."""
    lines = [f"mscomm-run: emulating {fabric.topology.name!r} at scale {fabric.scale:g}: "
             f"{len(fabric.hosts)} hosts, {len(fabric.switches)} bridges, {len(fabric.cables)} shaped cables"]
    names = {f"h{h.index}": f"host{h.index}(ranks {','.join(map(str, h.ranks))})" for h in fabric.hosts}
    names.update({f"s{i}": w for i, w in enumerate(fabric.switches)})
    for c in fabric.cables:
        lines.append(f"mscomm-run:   {names[c.a]} -> {names[c.b]} {float(c.nominal_ab):g} GB/s = "
                     f"{c.rate_ab / 1e6:.1f} MB/s, back {float(c.nominal_ba):g} GB/s = {c.rate_ba / 1e6:.1f} MB/s")
    return "\n".join(lines)


def rank_environment(net: Network, rank: int, unique_id: str, extra: dict[str, str] | None) -> dict[str, str]:
    fabric = net.fabric
    host = fabric.host_of_rank(rank)
    size = fabric.topology.num_ranks
    env = launcher.job_environment(rank, size, unique_id, net.tag, extra)
    local_rank, local_size = str(host.ranks.index(rank)), str(len(host.ranks))
    # torch's env:// names too, so torch scripts run unchanged; its store lives on rank 0's host.
    env.update(MSCOMM_LOCAL_RANK=local_rank, MSCOMM_LOCAL_SIZE=local_size, RANK=str(rank), WORLD_SIZE=str(size),
               LOCAL_RANK=local_rank, LOCAL_WORLD_SIZE=local_size,
               MASTER_ADDR=fabric.host_of_rank(0).address, MASTER_PORT=str(_MASTER_PORT),
               # gloo picks its address from the host name (loopback here): use the host's interface
               GLOO_SOCKET_IFNAME=net.host_dev[host.index])
    env.update(extra or {})
    return env


def run_emulated(command: Sequence[str], topology: str, *, scale: float = DEFAULT_SCALE,
                 timeout: float | None = None, prefix: bool = True, extra_env: dict[str, str] | None = None,
                 verbose: bool = True) -> int:
    """Run ``command`` once per compute node of ``topology`` in an emulated fabric; returns the exit status.

    Raises
    ------
    EmulationError
        If the fabric cannot be built (not root, iproute2 missing, unsupported topology).
    """
    fabric = load_fabric(topology, scale)
    if not command:
        raise EmulationError("no command given")
    # Signals during the build must still lead to the teardown in build()'s own handler.
    interrupted = {"signal": 0}

    def note(signum: int, _frame: object) -> None:
        interrupted["signal"] = signum
        raise KeyboardInterrupt

    old = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    net = None
    try:
        net = build(fabric)
        if verbose:
            print(describe(fabric), file=sys.stderr, flush=True)
        return _run_ranks(net, list(command), timeout, prefix, extra_env, interrupted, old)
    except KeyboardInterrupt:
        print("mscomm-run: interrupted; all ranks ended", file=sys.stderr)
        return 128 + (interrupted["signal"] or signal.SIGINT)
    finally:
        for s in old:  # a second Ctrl-C must not cut the teardown short
            signal.signal(s, signal.SIG_IGN)
        if net is not None:
            teardown(net)
        for s, h in old.items():
            signal.signal(s, h)


def _run_ranks(net: Network, command: list[str], timeout: float | None, prefix: bool,
               extra_env: dict[str, str] | None, interrupted: dict[str, int], old: dict) -> int:
    fabric = net.fabric
    command = getattr(launcher, "resolve_command", list)(command)  # `mscomm-run train.py` where it exists
    root = fabric.host_of_rank(0)
    unique_id = f"mscomm://{root.address}:{_BOOTSTRAP_PORT}/{secrets.token_hex(32)}"
    lock = threading.Lock()
    procs: list[subprocess.Popen[bytes]] = []
    pumps: list[threading.Thread] = []

    def forward(signum: int, _frame: object) -> None:
        interrupted["signal"] = signum
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM)

    for s in old:
        signal.signal(s, forward)
    # Opened here, not in the child: between fork and exec only async-signal-safe work is sure.
    fds = {h.index: net.open_host(h.index) for h in fabric.hosts}
    try:
        for rank in range(fabric.topology.num_ranks):
            fd = fds[fabric.host_of_rank(rank).index]

            def child(fd: int = fd) -> None:
                launcher._die_with_parent()
                enter_namespace(fd)

            p = subprocess.Popen(command, env=rank_environment(net, rank, unique_id, extra_env),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=child)
            procs.append(p)
            tag = f"[{rank}] " if prefix else ""
            for stream, out in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
                t = threading.Thread(target=launcher._pump, args=(stream, out, tag, lock), daemon=True)
                t.start()
                pumps.append(t)
        return launcher._supervise(procs, timeout, interrupted)
    except FileNotFoundError as e:
        print(f"mscomm-run: cannot start {command[0]!r}: {e.strerror}", file=sys.stderr)
        return 127
    finally:
        launcher._end_all(procs)
        for t in pumps:
            t.join(timeout=2)
        for fd in fds.values():
            os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mscomm.emulate``: show the fabric of a topology, or sweep leftovers."""
    import argparse

    from .netns import leftovers, sweep

    parser = argparse.ArgumentParser(prog="python -m mscomm.emulate",
                                     description="Inspect emulated fabrics and remove what killed launchers left.")
    parser.add_argument("topology", nargs="?", help="show the fabric this topology becomes")
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE)
    parser.add_argument("--sweep", action="store_true", help="remove namespaces/segments of launchers that are gone")
    parser.add_argument("--list", action="store_true", help="list every emulation object that exists now")
    args = parser.parse_args(argv)
    try:
        if args.topology:
            print(describe(load_fabric(args.topology, args.scale)))
        if args.sweep:
            removed = sweep()
            print(f"removed {sum(map(len, removed.values()))} object(s): {removed}")
        if args.list:
            print(leftovers())
    except EmulationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

