"""AdamW (decoupled weight decay), written out so its state is plain tensors keyed by parameter.

The same update as ``torch.optim.AdamW`` (non-fused); kept here because constructing the torch
optimizer imports torch._dynamo, which cost each rank ~3-10 s of start-up on a loaded machine,
and because a checkpoint wants the state by parameter name anyway.
"""

from __future__ import annotations

import math

import torch


class AdamW:
    def __init__(self, groups: list[dict], lr: float, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8):
        self.param_groups = [{"lr": lr, "weight_decay": 0.0, **g} for g in groups]
        self.betas, self.eps = betas, eps
        self.state: dict[torch.nn.Parameter, dict] = {}

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state.get(p)
                if st is None:
                    st = self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
                st["step"] += 1
                t = st["step"]
                if wd:
                    p.mul_(1 - lr * wd)
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (v.sqrt() / math.sqrt(1 - b2 ** t)).add_(self.eps)
                p.addcdiv_(m, denom, value=-lr / (1 - b1 ** t))

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
