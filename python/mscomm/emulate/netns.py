"""Build and remove an emulated fabric with iproute2: namespaces, veth pairs, bridges, tbf qdiscs.

Every object is named ``mse<pid>-<job><kind><index>`` (pid of the launcher in base 36), so a sweep
at the next start can find what a killed launcher left behind: an object whose launcher is gone is
removed. Nothing is ever created in the root namespace: both ends of a veth pair are created
directly inside their namespaces, so deleting a job's namespaces removes its veths, bridges and
qdiscs with them.
"""
from __future__ import annotations

import ctypes
import glob
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

from .fabric import EmulationError, Fabric

PREFIX = "mse"
STATE_DIR = "/run/mscomm-emulate"
_NAME = re.compile(rf"^{PREFIX}([0-9a-z]+)-")
_CLONE_NEWNET = 0x40000000
_jobs = itertools.count()
# A tbf bucket of ~4 ms of traffic (at least 64 KB, so one GSO packet fits): short bursts stay
# close to the rate and the rate stays exact over long transfers.
_BURST_SECONDS = 0.004
_MIN_BURST = 64 * 1024
_LIMIT_SECONDS = 0.05


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = digits[d] + out
        if n == 0:
            return out


def check_environment() -> None:
    """Raise :class:`EmulationError` unless this process can build namespaces."""
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        raise EmulationError(f"mscomm-run --emulate needs {' and '.join(missing)} (iproute2) on PATH; "
                             "install it, e.g. apt-get install iproute2")
    if os.geteuid() != 0:
        raise EmulationError("mscomm-run --emulate must run as root: it creates network namespaces, "
                             "veth pairs and tc qdiscs (try sudo)")


def _run(args: list[str], what: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EmulationError(f"cannot {what}: `{' '.join(args)}` failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _quiet(args: list[str]) -> None:
    subprocess.run(args, capture_output=True)


@dataclass
class Network:
    """A built fabric: names of its namespaces, the job tag of its shared memory, and its fabric."""

    fabric: Fabric
    tag: str
    host_ns: list[str]
    switch_ns: str
    host_dev: dict[int, str] = field(default_factory=dict)  # each host's one network interface

    @property
    def namespaces(self) -> list[str]:
        return self.host_ns + [self.switch_ns]

    def open_host(self, host: int) -> int:
        """A file descriptor of host ``host``'s namespace, for :func:`enter_namespace` in a child."""
        return os.open(f"/var/run/netns/{self.host_ns[host]}", os.O_RDONLY | os.O_CLOEXEC)


_libc = ctypes.CDLL(None, use_errno=True)


def enter_namespace(fd: int) -> None:
    """Move the calling process (a child between fork and exec) into the network namespace ``fd``."""
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns into the emulated host's network namespace failed")


def build(fabric: Fabric) -> Network:
    """Create the namespaces, cables, bridges and qdiscs of ``fabric``; on failure remove them."""
    check_environment()
    sweep()
    tag = f"{PREFIX}{_base36(os.getpid())}-{_base36(next(_jobs))}"
    _write_state()
    net = Network(fabric, tag, [f"{tag}h{h.index}" for h in fabric.hosts], f"{tag}sw")
    try:
        _build(net)
    except BaseException:
        teardown(net)
        raise
    return net


def _build(net: Network) -> None:
    fabric, tag = net.fabric, net.tag
    for ns in net.namespaces:
        _run(["ip", "netns", "add", ns], f"create network namespace {ns}")
        _run(["ip", "-n", ns, "link", "set", "lo", "up"], f"bring up loopback in {ns}")
    for i, _ in enumerate(fabric.switches):
        br = f"{tag}b{i}"
        _run(["ip", "-n", net.switch_ns, "link", "add", br, "type", "bridge", "stp_state", "0",
              "forward_delay", "0"], f"create bridge {br}")
        _run(["ip", "-n", net.switch_ns, "link", "set", br, "up"], f"bring up bridge {br}")
    for i, c in enumerate(fabric.cables):
        ends = []
        for node, side in ((c.a, "a"), (c.b, "b")):
            ns = net.host_ns[int(node[1:])] if node.startswith("h") else net.switch_ns
            ends.append((ns, f"{tag}c{i}{side}", node))
        (ns_a, dev_a, _), (ns_b, dev_b, _) = ends
        _run(["ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b],
             f"create the veth pair {dev_a}/{dev_b} for cable {c.a}-{c.b}")
        for (ns, dev, node), rate in zip(ends, (c.rate_ab, c.rate_ba)):
            if node.startswith("s"):
                _run(["ip", "-n", ns, "link", "set", dev, "master", f"{tag}b{node[1:]}"], f"attach {dev} to its bridge")
            else:
                host = fabric.hosts[int(node[1:])]
                _run(["ip", "-n", ns, "addr", "add", f"{host.address}/24", "dev", dev], f"address host {host.index}")
                net.host_dev[host.index] = dev
            _run(["ip", "-n", ns, "link", "set", dev, "up"], f"bring up {dev}")
            _shape(ns, dev, rate)


def _shape(ns: str, dev: str, rate: float) -> None:
    burst = max(_MIN_BURST, int(rate * _BURST_SECONDS))
    limit = burst + int(rate * _LIMIT_SECONDS)
    _run(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{int(rate * 8)}bit",
          "burst", str(burst), "limit", str(limit)], f"shape {dev} to {rate / 1e6:.1f} MB/s")


def _write_state() -> None:
    os.makedirs(STATE_DIR, exist_ok=True)
    with open(os.path.join(STATE_DIR, _base36(os.getpid())), "w") as f:
        f.write(_start_time(os.getpid()) or "")


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner_alive(pid36: str) -> bool:
    try:
        pid = int(pid36, 36)
    except ValueError:
        return False
    started = _start_time(pid)
    if started is None:
        return False
    try:
        with open(os.path.join(STATE_DIR, pid36)) as f:
            recorded = f.read().strip()
    except OSError:
        return True  # no record: assume the living process is the owner
    return not recorded or recorded == started


def _kill_namespace_processes(ns: str) -> None:
    for _ in range(50):
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        pids = [int(p) for p in out if p.isdigit() and int(p) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def remove_namespaces(names: list[str]) -> None:
    for ns in names:
        _kill_namespace_processes(ns)
        _quiet(["ip", "netns", "delete", ns])


def remove_shm(tag: str) -> list[str]:
    """Remove the segments of every job tag starting with ``tag`` (the launcher's and its ranks')."""
    from mscomm.launcher import sweep_shm

    return sweep_shm(tag, prefix=True)


def teardown(net: Network) -> None:
    """Remove everything of ``net``: its ranks' leftovers, namespaces (so veths, bridges, qdiscs), segments."""
    remove_namespaces(net.namespaces)
    remove_shm(net.tag)
    if not any(n.startswith(net.tag[: net.tag.index("-") + 1]) for n in list_namespaces()):
        try:
            os.unlink(os.path.join(STATE_DIR, net.tag[len(PREFIX): net.tag.index("-")]))
        except OSError:
            pass


def list_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_links() -> list[str]:
    """Interface names in this (the root) namespace."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def leftovers() -> dict[str, list[str]]:
    """Every emulation object that exists now (of any launcher): namespaces, root links, segments."""
    return {"namespaces": [n for n in list_namespaces() if _NAME.match(n)],
            "links": [n for n in list_links() if _NAME.match(n)],
            "shm": [p for p in glob.glob(f"/dev/shm/mscomm-{PREFIX}*") if _NAME.match(os.path.basename(p)[7:])]}


def sweep() -> dict[str, list[str]]:
    """Remove what launchers that no longer run left behind; returns what was removed."""
    if shutil.which("ip") is None:
        return {"namespaces": [], "links": [], "shm": []}
    found = leftovers()
    stale = {k: [n for n in v if not _owner_alive(_NAME.match(os.path.basename(n)[7:] if k == "shm" else n).group(1))]
             for k, v in found.items()}
    remove_namespaces(stale["namespaces"])
    for link in stale["links"]:
        _quiet(["ip", "link", "delete", link])
    for path in stale["shm"]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    for path in glob.glob(os.path.join(STATE_DIR, "*")):
        if not _owner_alive(os.path.basename(path)):
            try:
                os.unlink(path)
            except OSError:
                pass
    return stale
