"""One rank of a Sigma training run: the step loop, validation, gradient sync and checkpoints.

A step: draw the global batch of the step (the same for every layout) and take this rank's share;
forward (the MoE layers dispatch and combine tokens over the EP group); loss = mean byte
cross-entropy + the load-balancing losses; backward (the reverse exchanges); sum the dense
gradients over all ranks and the expert gradients over their replicas, both divided by the world
size, so every layout computes the gradient of the same global-batch loss; clip by the global
norm; AdamW.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from mscomm.sigma import checkpoint, report
from mscomm.sigma.config import Config, SigmaError
from mscomm.sigma.data import batch_starts, val_starts, windows
from mscomm.sigma.preflight import preflight
from mscomm.sigma.model import SigmaLM
from mscomm.sigma.optim import AdamW
from mscomm.sigma.parallel import Comm, allreduce_grads, ddp_timed_hook, init_distributed, make_layout


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", os.environ.get("MSCOMM_LOCAL_RANK", "0")) or 0)
        return torch.device("cuda", local % torch.cuda.device_count())
    return torch.device("cpu")


def lr_at(cfg: Config, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


class Trainer:
    def __init__(self, cfg: Config, rank: int, world: int):
        self.cfg, self.rank, self.world = cfg, rank, world
        self.corpus = preflight(cfg)
        self.device = pick_device()
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        self.layout = make_layout(rank, world, cfg.ep)
        self.comm = Comm(self.device, cfg.backend)
        self.schedule = cfg.schedule()
        model = SigmaLM(cfg, self.layout, self.comm).to(self.dtype)
        model.init_weights(cfg.seed)
        self.model = model.to(self.device)
        self.dense = [p for _, p in model.dense_parameters()]
        self.expert = [p for _, p in model.expert_parameters()]
        decay = [p for _, p in model.named_parameters() if p.ndim >= 2]
        no_decay = [p for _, p in model.named_parameters() if p.ndim < 2]
        self.opt = AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)
        self.ddp = None
        if cfg.grad_sync == "ddp" and world > 1 and not self.comm.stage:
            from torch.nn.parallel import DistributedDataParallel as DDP
            DDP._set_params_and_buffers_to_ignore_for_model(model, [n for n, _ in model.expert_parameters()])
            self.ddp = DDP(model, process_group=self.layout.ddp_group, broadcast_buffers=False,
                           bucket_cap_mb=cfg.bucket_mb)
            self.ddp.register_comm_hook(None, ddp_timed_hook(self.comm, self.layout.ddp_group))
        self.local_batch = cfg.batch // world
        self.history = {"train_loss": [], "lb_loss": [], "val": [], "tokens_per_s": [], "comm_s": [],
                        "step_s": [], "loads": [], "topk": []}
        self.start = 0
        if cfg.resume:
            self.start, self.history = checkpoint.load(self, cfg.resume)

    # -- one step ---------------------------------------------------------------------------------
    def _local_rows(self, data: np.ndarray, starts: np.ndarray) -> torch.Tensor:
        lo = self.rank * (len(starts) // self.world)
        mine = starts[lo:lo + len(starts) // self.world]
        return torch.from_numpy(windows(data, mine, self.cfg.seq)).to(self.device)

    def _reduce_stats(self, values: list[float], counts: list[torch.Tensor]) -> tuple[list[float], np.ndarray]:
        """Sum small statistics over all ranks (untimed: bookkeeping, not training traffic)."""
        flat = torch.cat([torch.tensor(values, dtype=torch.float64, device=self.device)] +
                         [c.detach().to(torch.float64) for c in counts])
        if self.world > 1:
            before = self.comm.seconds
            self.comm.all_reduce(flat, self.layout.ddp_group)
            self.comm.seconds = before
        flat = flat.cpu()
        n = len(values)
        rest = flat[n:].view(len(counts), -1).numpy() if counts else np.zeros((0, 0))
        return flat[:n].tolist(), rest

    def step(self, step: int) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        comm0 = self.comm.seconds
        topk = self.schedule.topk(step)
        rows = self._local_rows(self.corpus.train, batch_starts(len(self.corpus.train), cfg.seq, cfg.batch,
                                                                cfg.seed, step))
        for g in self.opt.param_groups:
            g["lr"] = lr_at(cfg, step)
        net = self.ddp if self.ddp is not None else self.model
        logits, stats = net(rows[:, :-1], topk)
        ce = F.cross_entropy(logits.reshape(-1, 256).float(), rows[:, 1:].reshape(-1))
        lb = torch.stack([s.lb_loss.float() for s in stats]).sum()
        (ce + lb).backward()
        if self.ddp is None:
            allreduce_grads(self.dense, self.layout.ddp_group, self.world, self.comm, cfg.bucket_mb)
        allreduce_grads(self.expert, self.layout.expert_dp_group, self.world, self.comm, cfg.bucket_mb)
        if self.world > 1 and self.layout.expert_dp_group is None:
            for p in self.expert:
                if p.grad is not None:
                    p.grad.div_(self.world)
        self._clip()
        self.opt.step()
        self.opt.zero_grad()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        comm_s = self.comm.seconds - comm0
        (ce_sum, lb_sum), loads = self._reduce_stats([ce.item(), lb.item()], [s.counts for s in stats])
        return {"loss": ce_sum / self.world, "lb": lb_sum / self.world, "seconds": seconds, "comm_s": comm_s,
                "tokens_per_s": cfg.batch * cfg.seq / seconds, "loads": loads.astype(np.int64).tolist(),
                "topk": list(topk)}

    def _clip(self) -> None:
        dense_sq = sum((p.grad.double().pow(2).sum() for p in self.dense if p.grad is not None),
                       torch.zeros((), dtype=torch.float64, device=self.device))
        expert_sq = sum((p.grad.double().pow(2).sum() for p in self.expert if p.grad is not None),
                        torch.zeros((), dtype=torch.float64, device=self.device))
        if self.layout.ep_group is not None:
            expert_sq = expert_sq.reshape(1)
            self.comm.all_reduce(expert_sq, self.layout.ep_group)
            expert_sq = expert_sq[0]
        norm = float((dense_sq + expert_sq).sqrt())
        if norm > self.cfg.clip:
            scale = self.cfg.clip / (norm + 1e-6)
            for p in self.dense + self.expert:
                if p.grad is not None:
                    p.grad.mul_(scale)

    @torch.no_grad()
    def validate(self, step: int) -> float:
        cfg = self.cfg
        starts = val_starts(len(self.corpus.val), cfg.seq, cfg.val_seqs)
        rows = self._local_rows(self.corpus.val, starts)
        topk = self.schedule.topk(step)
        total = 0.0
        before = self.comm.seconds
        for i in range(0, len(rows), self.local_batch):
            chunk = rows[i:i + self.local_batch]
            logits, _ = self.model(chunk[:, :-1], topk)
            total += float(F.cross_entropy(logits.reshape(-1, 256).double(), chunk[:, 1:].reshape(-1),
                                           reduction="sum"))
        self.comm.seconds = before
        (total,), _ = self._reduce_stats([total], [])
        return total / (cfg.val_seqs * cfg.seq)

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        stop = cfg.stop_at or cfg.steps
        bar = None
        if self.rank == 0 and cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=cfg.steps, initial=self.start, desc="sigma", unit="step", dynamic_ncols=True)
        h = self.history
        for step in range(self.start, stop):
            r = self.step(step)
            h["train_loss"].append(r["loss"])
            h["lb_loss"].append(r["lb"])
            h["tokens_per_s"].append(r["tokens_per_s"])
            h["comm_s"].append(r["comm_s"])
            h["step_s"].append(r["seconds"])
            h["loads"].append(r["loads"])
            h["topk"].append(r["topk"])
            done = step + 1
            if (cfg.val_every and done % cfg.val_every == 0) or done == cfg.steps:
                v = self.validate(done)
                h["val"].append({"step": done, "loss": v})
                if bar is not None:
                    bar.write(f"step {done}: val loss {v:.4f} (unigram baseline {self.corpus.unigram_nats():.4f})")
            if bar is not None:
                bar.set_postfix(loss=f"{r['loss']:.3f}", tok_s=f"{r['tokens_per_s']:.0f}",
                                comm=f"{r['comm_s'] / r['seconds']:.0%}", refresh=False)
                bar.update(1)
            if (cfg.ckpt_every and done % cfg.ckpt_every == 0 and done < stop) or done == stop:
                checkpoint.save(self, done)
        if bar is not None:
            bar.close()
        summary = None
        if self.rank == 0:
            summary = report.write(self, stop)
        if self.world > 1:
            dist.barrier()
        return summary or {}


def run_rank(cfg: Config) -> dict:
    """Run this process's rank of the job described by ``cfg`` (launcher environment decides)."""
    rank, world = init_distributed(cfg.backend, cfg.ranks, cfg.timeout)
    try:
        if world != cfg.ranks:
            cfg = dataclasses.replace(cfg, ranks=world)
        if torch.get_num_threads() > 1 and world > 1 and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
        trainer = Trainer(cfg, rank, world)
        return trainer.run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def summary_path(out: str) -> str:
    return os.path.join(out, "summary.json")


def read_summary(out: str) -> dict:
    with open(summary_path(out)) as f:
        return json.load(f)


__all__ = ["Trainer", "run_rank", "preflight", "read_summary", "SigmaError"]
