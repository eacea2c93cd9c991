"""The end-of-run report: ``summary.json`` and ``summary.png`` (loss curves, expert loads)."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np


def imbalance(loads: list, last_fraction: float = 0.1) -> list[dict]:
    """Per layer: max/mean and min/mean of the per-expert assignment counts summed over the last
    ``last_fraction`` of the steps (at least one step)."""
    arr = np.asarray(loads, dtype=np.float64)          # [steps, layers, experts]
    if arr.size == 0:
        return []
    window = max(1, int(round(len(arr) * last_fraction)))
    total = arr[-window:].sum(0)
    out = []
    for layer in total:
        mean = layer.mean()
        out.append({"max_over_mean": float(layer.max() / mean) if mean else 0.0,
                    "min_over_mean": float(layer.min() / mean) if mean else 0.0,
                    "fractions": (layer / layer.sum()).tolist() if layer.sum() else layer.tolist()})
    return out


def write(trainer: Any, stop: int) -> dict:
    cfg, h = trainer.cfg, trainer.history
    os.makedirs(cfg.out, exist_ok=True)
    skip = min(3, max(0, len(h["step_s"]) - 1))       # the first steps include warm-up costs
    step_s = float(np.mean(h["step_s"][skip:])) if h["step_s"] else 0.0
    comm_s = float(np.mean(h["comm_s"][skip:])) if h["comm_s"] else 0.0
    summary = {
        "config": dataclasses.asdict(cfg),
        "layout": {"world": trainer.world, "ep": cfg.ep, "expert_dp": trainer.world // cfg.ep,
                   "backend": cfg.backend, "device": str(trainer.device), "grad_sync": cfg.grad_sync},
        "data": {"source": trainer.corpus.source, "train_bytes": int(len(trainer.corpus.train)),
                 "val_bytes": int(len(trainer.corpus.val))},
        "unigram_val_nats": trainer.corpus.unigram_nats(),
        "steps_done": stop,
        "train_loss": h["train_loss"],
        "lb_loss": h["lb_loss"],
        "val": h["val"],
        "tokens_per_s": h["tokens_per_s"],
        "comm_s_per_step": h["comm_s"],
        "step_s": h["step_s"],
        "topk": h["topk"],
        "expert_loads": h["loads"],
        "mean": {"tokens_per_s": cfg.batch * cfg.seq / step_s if step_s else 0.0, "step_s": step_s,
                 "comm_s_per_step": comm_s, "comm_share": comm_s / step_s if step_s else 0.0},
        "imbalance_last10pct": imbalance(h["loads"]),
    }
    with open(os.path.join(cfg.out, "summary.json"), "w") as f:
        json.dump(summary, f)
    try:
        plot(summary, os.path.join(cfg.out, "summary.png"))
    except ImportError:
        pass  # matplotlib is optional (the "plot" extra)
    return summary


def plot(summary: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(16, 4.5))
    train = summary["train_loss"]
    ax0.plot(range(1, len(train) + 1), train, label="train", lw=0.8)
    if summary["val"]:
        ax0.plot([v["step"] for v in summary["val"]], [v["loss"] for v in summary["val"]], "o-", label="validation")
    ax0.axhline(summary["unigram_val_nats"], color="gray", ls="--", label="unigram baseline")
    ax0.set_xlabel("step")
    ax0.set_ylabel("loss (nats/byte)")
    ax0.legend()
    ax0.set_title("loss")
    loads = np.asarray(summary["expert_loads"], dtype=np.float64)
    if loads.size:
        window = max(1, len(loads) // 10)
        last = loads[-window:].sum(0)
        share = last / np.maximum(1.0, last.mean(1, keepdims=True))
        im = ax1.imshow(share, aspect="auto", cmap="viridis", origin="lower")
        ax1.set_xlabel("expert")
        ax1.set_ylabel("layer")
        ax1.set_title("expert load / mean (last 10% of steps)")
        fig.colorbar(im, ax=ax1)
        low = loads[:, 0, :]
        low = low / np.maximum(1.0, low.mean(1, keepdims=True))
        im2 = ax2.imshow(low.T, aspect="auto", cmap="viridis", origin="lower", interpolation="nearest")
        ax2.set_xlabel("step")
        ax2.set_ylabel("expert")
        ax2.set_title("lowest layer: load / mean over steps")
        fig.colorbar(im2, ax=ax2)
    fig.suptitle(f"Sigma MoE: {summary['layout']['world']} rank(s), EP {summary['layout']['ep']}, "
                 f"{summary['layout']['backend']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
