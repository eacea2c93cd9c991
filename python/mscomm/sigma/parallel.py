"""Process groups, the timed collectives the trainer uses, and gradient synchronization.

Layout of ``ranks`` ranks with expert-parallel size ``ep``: the expert-parallel (EP) groups are
blocks of ``ep`` consecutive ranks (e.g. the ranks of one host); each EP group holds every expert
once, rank ``j`` of it experts ``[j*E/ep, (j+1)*E/ep)``. The ranks holding the same experts (same
position in their EP group) form that shard's expert-data-parallel group. Dense (non-expert)
weights are replicated on every rank: their data-parallel group is the whole world.

Every collective goes through :class:`Comm`, which times it (the "comm" share of a step) and
stages CUDA tensors through the CPU for backends that serve CPU tensors only.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from mscomm.sigma.launch import launched_world


@dataclass
class Layout:
    rank: int
    world: int
    ep: int
    ep_group: Any = None          # None when ep == 1
    expert_dp_group: Any = None   # None when world == ep
    ddp_group: Any = None         # the world (None when world == 1)

    @property
    def ep_rank(self) -> int:
        return self.rank % self.ep

    @property
    def expert_dp(self) -> int:
        return self.world // self.ep


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(backend: str, world_hint: int, timeout: float) -> tuple[int, int]:
    """Start torch.distributed from whatever launched us; returns (rank, world).

    torchrun and the trainer's own launcher set ``MASTER_ADDR``/``MASTER_PORT`` (``env://``). Under
    mscomm-run or mpirun, an mscomm communicator first agrees on rank 0's address and a free port.
    """
    if backend == "mscomm":
        import mscomm.torch  # noqa: F401  registers the backend
    launched = launched_world()
    if launched is None:
        return 0, 1
    kind, rank, world = launched
    if world == 1:
        return 0, 1
    td = datetime.timedelta(seconds=timeout)
    if kind == "torchrun":
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world, timeout=td)
        return rank, world
    import numpy as np
    import mscomm
    comm = mscomm.init(timeout=timeout)
    addr = np.zeros(128, dtype=np.uint8)
    if comm.rank == 0:
        host = "127.0.0.1" if kind == "mscomm-run" else socket.gethostbyname(socket.gethostname())
        text = f"{host}:{_free_port()}".encode()
        addr[:len(text)] = np.frombuffer(text, dtype=np.uint8)
    comm.broadcast(addr, root=0)
    where = bytes(addr).rstrip(b"\0").decode()
    mscomm.finalize()
    dist.init_process_group(backend, init_method=f"tcp://{where}", rank=rank, world_size=world, timeout=td)
    return rank, world


def make_layout(rank: int, world: int, ep: int) -> Layout:
    """Create the EP and expert-DP groups (every rank calls new_group for every group, in order)."""
    layout = Layout(rank, world, ep)
    if world == 1:
        return layout
    layout.ddp_group = dist.group.WORLD
    if ep > 1:
        for start in range(0, world, ep):
            g = dist.new_group(list(range(start, start + ep)))
            if start <= rank < start + ep:
                layout.ep_group = g
    if world > ep:
        for pos in range(ep):
            g = dist.new_group(list(range(pos, world, ep)))
            if rank % ep == pos:
                layout.expert_dp_group = g
    return layout


class Comm:
    """Timed collectives; CUDA tensors go through the CPU unless the backend is nccl."""

    def __init__(self, device: torch.device, backend: str):
        self.seconds = 0.0
        self.stage = device.type == "cuda" and backend != "nccl"
        self.cuda = device.type == "cuda"

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def all_reduce(self, t: torch.Tensor, group: Any) -> None:
        """In-place SUM over ``group`` (nothing when the group is None)."""
        if group is None:
            return
        self._sync()
        t0 = time.perf_counter()
        if self.stage:
            host = t.cpu()
            dist.all_reduce(host, group=group)
            t.copy_(host)
        else:
            dist.all_reduce(t, group=group)
        self._sync()
        self.seconds += time.perf_counter() - t0

    def all_to_all(self, x: torch.Tensor, out_splits: list[int], in_splits: list[int], group: Any) -> torch.Tensor:
        """Uneven all_to_all_single of dim-0 rows; returns the received rows."""
        self._sync()
        t0 = time.perf_counter()
        x = x.contiguous()
        if self.stage:
            host_in = x.cpu()
            host_out = host_in.new_empty((sum(out_splits),) + tuple(x.shape[1:]))
            dist.all_to_all_single(host_out, host_in, out_splits, in_splits, group=group)
            out = host_out.to(x.device)
        else:
            out = x.new_empty((sum(out_splits),) + tuple(x.shape[1:]))
            dist.all_to_all_single(out, x, out_splits, in_splits, group=group)
        self._sync()
        self.seconds += time.perf_counter() - t0
        return out


class AllToAll(torch.autograd.Function):
    """Uneven all-to-all whose backward is the reverse exchange (splits swapped)."""

    @staticmethod
    def forward(ctx, x, out_splits, in_splits, comm, group):  # type: ignore[override]
        ctx.splits, ctx.comm, ctx.group = (out_splits, in_splits), comm, group
        return comm.all_to_all(x, out_splits, in_splits, group)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        out_splits, in_splits = ctx.splits
        return ctx.comm.all_to_all(grad, in_splits, out_splits, ctx.group), None, None, None, None


def _flat_buckets(tensors: list[torch.Tensor], bucket_bytes: int) -> list[list[torch.Tensor]]:
    buckets, cur, size = [], [], 0
    for t in tensors:
        cur.append(t)
        size += t.numel() * t.element_size()
        if size >= bucket_bytes:
            buckets.append(cur)
            cur, size = [], 0
    if cur:
        buckets.append(cur)
    return buckets


def allreduce_grads(params: list[torch.nn.Parameter], group: Any, divide: int, comm: Comm, bucket_mb: float) -> None:
    """Sum the gradients of ``params`` over ``group`` in flat buckets, then divide by ``divide``."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    for bucket in _flat_buckets(grads, int(bucket_mb * (1 << 20))):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        comm.all_reduce(flat, group)
        if divide != 1:
            flat.div_(divide)
        offset = 0
        for g in bucket:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n


def ddp_timed_hook(comm: Comm, group: Any):
    """A DDP comm hook that averages like the default one and adds each bucket's time in flight
    to ``comm.seconds``. (No annotations: DDP checks them, and this module's are strings.)"""
    world = dist.get_world_size(group)

    def hook(state, bucket):
        t0 = time.perf_counter()
        work = dist.all_reduce(bucket.buffer(), group=group, async_op=True)

        def done(fut):
            comm.seconds += time.perf_counter() - t0
            return fut.value()[0].div_(world)

        return work.get_future().then(done)

    return hook
