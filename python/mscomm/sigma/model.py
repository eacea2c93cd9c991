"""The Sigma MoE language model: RMSNorm, rotary positions, DiffQKV attention, MoE feed-forward.

Words used below:

- *assignment*: one (token, expert) pair chosen by the router; a token routed top-k has k.
- *dispatch*: the assignments sorted by expert, their rows sent to the rank holding that expert
  (uneven ``all_to_all_single``; the per-expert counts are exchanged first); *combine* is the
  reverse exchange, after which each token sums its k expert outputs weighted by the gates.

Each parameter is initialized from a generator of its own, seeded by (seed, name) for dense
weights and (seed, layer, expert) for expert weights, so the model is the same whatever the
layout: one rank holding every expert or many holding a shard each.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from mscomm.sigma.config import Config
from mscomm.sigma.parallel import AllToAll, Comm, Layout


def _generator(*key: object) -> torch.Generator:
    digest = hashlib.sha256(repr(key).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (first half, second half) of ``x`` [B, T, H, D] by the position angle."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class DiffQKVAttention(nn.Module):
    """Causal attention with separate head counts for Q, K and V (K fewest) and an augmented Q.

    Each query head h reads K head ``h // (q_heads / k_heads)`` and V head
    ``h // (q_heads / v_heads)``. The query path is wider than the model: x -> q_aug*dim -> SiLU
    -> the query heads, adding capacity without adding to the K/V cache.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        d, hd = cfg.dim, cfg.head_dim
        aug = max(1, round(cfg.q_aug * d))
        self.q_in = nn.Linear(d, aug, bias=False)
        self.q_out = nn.Linear(aug, cfg.q_heads * hd, bias=False)
        self.k = nn.Linear(d, cfg.k_heads * hd, bias=False)
        self.v = nn.Linear(d, cfg.v_heads * hd, bias=False)
        self.o = nn.Linear(cfg.q_heads * hd, d, bias=False)
        self.q_norm = RMSNorm(hd)
        self.k_norm = RMSNorm(hd)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        B, T, _ = x.shape
        q = self.q_out(F.silu(self.q_in(x))).view(B, T, c.q_heads, c.head_dim)
        k = self.k(x).view(B, T, c.k_heads, c.head_dim)
        v = self.v(x).view(B, T, c.v_heads, c.head_dim)
        q = rotary(self.q_norm(q), cos, sin).transpose(1, 2)
        k = rotary(self.k_norm(k), cos, sin).transpose(1, 2).repeat_interleave(c.q_heads // c.k_heads, dim=1)
        v = v.transpose(1, 2).repeat_interleave(c.q_heads // c.v_heads, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(B, T, c.q_heads * c.head_dim))


@dataclass
class RouteStats:
    """What one MoE layer saw in a forward pass (for the balancing loss and the load report)."""

    counts: torch.Tensor                # [E] assignments per expert on this rank (int64)
    lb_loss: torch.Tensor               # scalar
    global_counts: torch.Tensor | None = field(default=None)  # [E] over the DP group, when computed


class MoE(nn.Module):
    """Fine-grained SwiGLU experts behind a float32 top-k router; dropless; experts sharded by EP."""

    def __init__(self, cfg: Config, layer: int, layout: Layout, comm: Comm):
        super().__init__()
        self.cfg, self.layer, self.layout, self.comm = cfg, layer, layout, comm
        self.local = cfg.experts // layout.ep
        self.first = layout.ep_rank * self.local
        self.router = nn.Linear(cfg.dim, cfg.experts, bias=False)
        d, f = cfg.dim, cfg.expert_hidden
        self.w1 = nn.Parameter(torch.empty(self.local, d, f))
        self.w3 = nn.Parameter(torch.empty(self.local, d, f))
        self.w2 = nn.Parameter(torch.empty(self.local, f, d))

    def init_experts(self, seed: int, std: float) -> None:
        with torch.no_grad():
            for i in range(self.local):
                g = _generator(seed, "expert", self.layer, self.first + i)
                for w in (self.w1, self.w3, self.w2):
                    w[i].copy_(torch.randn(w[i].shape, generator=g, dtype=torch.float64) * std)

    def _experts(self, rows: torch.Tensor, per_expert: list[int]) -> torch.Tensor:
        outs, start = [], 0
        for i, n in enumerate(per_expert):
            x = rows[start:start + n]
            outs.append((F.silu(x @ self.w1[i]) * (x @ self.w3[i])) @ self.w2[i])
            start += n
        return torch.cat(outs) if outs else rows

    def _balance_loss(self, probs: torch.Tensor, topi: torch.Tensor, counts: torch.Tensor,
                      tokens_per_seq: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """coeff * E * sum_i f_i * p_i; f from the global batch (all-reduced counts) or per micro-batch."""
        c, E = self.cfg, self.cfg.experts
        if c.balance == "global":
            total = counts.to(torch.float64)
            self.comm.all_reduce(total, self.layout.ddp_group)  # in place, no gradient needed
            f = (total / total.sum()).to(probs.dtype)
            return c.lb_coeff * E * (f * probs.mean(0)).sum(), total.to(torch.int64)
        group = c.micro_batch * tokens_per_seq
        n_micro = probs.shape[0] // group
        p = probs.view(n_micro, group, E).mean(1)
        onehot = F.one_hot(topi.view(n_micro, -1), E).sum(1).to(probs.dtype)
        f = onehot / onehot.sum(1, keepdim=True)
        return c.lb_coeff * E * (f * p).sum(1).mean(), None

    def forward(self, x: torch.Tensor, k: int, tokens_per_seq: int) -> tuple[torch.Tensor, RouteStats]:
        N, d = x.shape
        E, ep = self.cfg.experts, self.layout.ep
        probs = torch.softmax(F.linear(x.float(), self.router.weight.float()), dim=-1)   # router in float32
        gates, topi = probs.topk(k, dim=-1)                                               # [N, k]
        experts = topi.reshape(-1)
        order = torch.argsort(experts, stable=True)          # by expert, then by (token, slot)
        counts = torch.bincount(experts, minlength=E)
        lb, global_counts = self._balance_loss(probs, topi, counts, tokens_per_seq)
        rows = x[order // k]                                 # dispatch order
        if ep == 1:
            y_rows = self._experts(rows, counts.tolist())
        else:
            # Counts first: each rank learns how many rows of each of its experts every peer sends.
            recv = self.comm.all_to_all(counts.view(ep, self.local), [1] * ep, [1] * ep, self.layout.ep_group)
            in_splits = counts.view(ep, self.local).sum(1).tolist()
            out_splits = recv.sum(1).tolist()
            got = AllToAll.apply(rows, out_splits, in_splits, self.comm, self.layout.ep_group)
            # Received rows are (source rank, local expert); the experts want (local expert, source).
            recv_l = recv.tolist()
            starts, pos = [[0] * self.local for _ in range(ep)], 0
            for s in range(ep):
                for e in range(self.local):
                    starts[s][e] = pos
                    pos += recv_l[s][e]
            perm = [torch.arange(starts[s][e], starts[s][e] + recv_l[s][e]) for e in range(self.local) for s in range(ep)]
            perm_t = torch.cat(perm).to(x.device) if perm else torch.zeros(0, dtype=torch.long, device=x.device)
            per_expert = [sum(recv_l[s][e] for s in range(ep)) for e in range(self.local)]
            out_local = self._experts(got[perm_t], per_expert)
            back = torch.empty_like(out_local).index_copy(0, perm_t, out_local)
            y_rows = AllToAll.apply(back, in_splits, out_splits, self.comm, self.layout.ep_group)
        # Combine: back to (token, slot) order, weight by the gates, sum each token's k outputs.
        y = torch.empty_like(y_rows).index_copy(0, order, y_rows).view(N, k, d)
        y = (y * gates.to(y.dtype).unsqueeze(-1)).sum(1)
        return y, RouteStats(counts, lb, global_counts)


class Block(nn.Module):
    def __init__(self, cfg: Config, layer: int, layout: Layout, comm: Comm):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim)
        self.attn = DiffQKVAttention(cfg)
        self.moe_norm = RMSNorm(cfg.dim)
        self.moe = MoE(cfg, layer, layout, comm)

    def forward(self, x, cos, sin, k):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        B, T, d = x.shape
        y, stats = self.moe(self.moe_norm(x).reshape(B * T, d), k, T)
        return x + y.view(B, T, d), stats


class SigmaLM(nn.Module):
    """Decoder-only byte-level MoE LM (vocabulary of 256 bytes, tied input/output embedding)."""

    def __init__(self, cfg: Config, layout: Layout, comm: Comm):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(256, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg, i, layout, comm) for i in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim)
        half = cfg.head_dim // 2
        inv = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float64) / half))
        ang = torch.arange(cfg.seq, dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos()[None, :, None, :], persistent=False)
        self.register_buffer("sin", ang.sin()[None, :, None, :], persistent=False)

    def expert_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if n.split(".")[-1] in ("w1", "w2", "w3")]

    def dense_parameters(self) -> list[tuple[str, nn.Parameter]]:
        names = {n for n, _ in self.expert_parameters()}
        return [(n, p) for n, p in self.named_parameters() if n not in names]

    def init_weights(self, seed: int) -> None:
        std = self.cfg.init_std
        with torch.no_grad():
            for name, p in self.dense_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                else:
                    g = _generator(seed, "dense", name)
                    # Output projections get the depth-scaled std (GPT-2 style).
                    s = std / math.sqrt(2 * self.cfg.layers) if name.endswith("attn.o.weight") else std
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * s)
            for block in self.blocks:
                block.moe.init_experts(seed, std)

    def forward(self, tokens: torch.Tensor, topk: tuple[int, ...]) -> tuple[torch.Tensor, list[RouteStats]]:
        B, T = tokens.shape
        x = self.embed(tokens)
        cos, sin = self.cos[:, :T].to(x.dtype), self.sin[:, :T].to(x.dtype)
        stats = []
        for block, k in zip(self.blocks, topk):
            x, s = block(x, cos, sin, k)
            stats.append(s)
        return F.linear(self.norm(x), self.embed.weight), stats
