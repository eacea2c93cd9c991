"""The machine this process runs on, as a topology: ranks per host behind shared memory,
hosts behind one network switch."""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Optional

from .model import Topology
from .zoo import Number, _Builder, _check_count

# Nominal per-rank bandwidths (GB/s) used when none are given; see docs/topology-format.md.
SHM_BW_PER_RANK = 10
NVLINK_BW_PER_GPU = 300
NET_BW_PER_HOST = 2


def gpu_count() -> int:
    """Number of NVIDIA GPUs ``nvidia-smi -L`` lists (0 when it is absent or fails)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def detect(hosts: Optional[int] = None, ranks_per_host: Optional[int] = None,
           intra_bw: Optional[Number] = None, net_bw: Number = NET_BW_PER_HOST) -> Topology:
    """Topology of this machine (repeated ``hosts`` times).

    Parameters
    ----------
    hosts : int, optional
        Number of hosts; default ``SLURM_JOB_NUM_NODES`` or 1.
    ranks_per_host : int, optional
        Default: the GPU count if GPUs are present, else the CPU count (at least 2).
    intra_bw : number, optional
        GB/s each way between a rank and its host's switch (shared memory or NVSwitch);
        default 300 with GPUs, else 10.
    net_bw : number
        GB/s each way between a host and the network switch (used when ``hosts > 1``).
    """
    hosts = hosts or int(os.environ.get("SLURM_JOB_NUM_NODES", "1") or 1)
    gpus = gpu_count()
    ranks_per_host = ranks_per_host or gpus or max(2, os.cpu_count() or 2)
    _check_count("hosts", hosts)
    _check_count("ranks_per_host", ranks_per_host)
    intra_bw = intra_bw or (NVLINK_BW_PER_GPU if gpus else SHM_BW_PER_RANK)
    b = _Builder()
    net = b.switch("net", "switch") if hosts > 1 else None
    for h in range(hosts):
        hub = b.switch(f"h{h}.{'nvswitch' if gpus else 'shm'}", "nvswitch" if gpus else "shm")
        for r in range(ranks_per_host):
            b.cable(b.gpu(f"h{h}.rank{r}", h), hub, intra_bw)
        if net:
            # The host's network share is spread over its ranks through one NIC.
            nic = b.switch(f"h{h}.nic", "nic")
            b.cable(hub, nic, net_bw)
            b.cable(nic, net, net_bw)
    if hosts == 1 and ranks_per_host < 2:
        raise ValueError("a single host needs at least 2 ranks")
    return b.build(f"local{hosts}x{ranks_per_host}",
                   f"this machine: {hosts} host(s) x {ranks_per_host} ranks")
