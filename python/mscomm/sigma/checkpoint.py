"""Checkpoints: ``DIR/checkpoint/`` holds ``meta.json`` (settings, layout, step), ``history.json``
(every step's record so far), ``shared.pt`` (dense weights and their AdamW state, written by rank
0) and ``experts-rank{R}.pt`` (each rank's expert shard and its AdamW state).

A checkpoint is written to ``checkpoint.tmp`` and renamed once every rank has written its part, so
an interrupted save leaves the previous checkpoint intact. Training is deterministic given the
weights, the optimizer state and the step (batches and the learning rate are functions of the
step), so a resumed run repeats the uninterrupted run's losses exactly.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from mscomm.sigma.config import Config, SigmaError

FORMAT = 1


def _dir(out: str) -> str:
    return os.path.join(out, "checkpoint")


def read_meta(path: str) -> dict:
    meta_file = os.path.join(_dir(path), "meta.json")
    try:
        with open(meta_file) as f:
            return json.load(f)
    except FileNotFoundError:
        raise SigmaError(f"--resume {path}: no checkpoint there ({meta_file} is missing)") from None
    except (OSError, ValueError) as e:
        raise SigmaError(f"--resume {path}: cannot read {meta_file}: {e}") from None


def check_compatible(cfg: Config, path: str) -> dict:
    """Raise SigmaError naming every setting where the checkpoint at ``path`` differs from ``cfg``."""
    meta = read_meta(path)
    if meta.get("format") != FORMAT:
        raise SigmaError(f"--resume {path}: checkpoint format {meta.get('format')}, this trainer reads {FORMAT}")
    mine = cfg.identity()
    theirs = meta["config"]
    diffs = [f"{k}: checkpoint {theirs.get(k)!r}, now {mine.get(k)!r}" for k in sorted(set(mine) | set(theirs))
             if mine.get(k) != theirs.get(k)]
    if diffs:
        raise SigmaError(f"--resume {path}: the checkpoint comes from another configuration "
                         f"({'; '.join(diffs)}); use the same settings or a fresh --out")
    if meta["step"] >= cfg.steps:
        raise SigmaError(f"--resume {path}: the checkpoint is at step {meta['step']}, the run has only "
                         f"--steps={cfg.steps}")
    return meta


def _opt_state(trainer: Any, named: list) -> dict:
    import torch
    out = {}
    for name, p in named:
        state = trainer.opt.state.get(p, {})
        out[name] = {k: (v.detach().cpu().clone() if torch.is_tensor(v) else v) for k, v in state.items()}
    return out


def save(trainer: Any, step: int) -> None:
    import torch
    import torch.distributed as dist
    cfg, model = trainer.cfg, trainer.model
    final, tmp = _dir(cfg.out), _dir(cfg.out) + ".tmp"
    if trainer.rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    if trainer.world > 1:
        dist.barrier()
    dense, experts = model.dense_parameters(), model.expert_parameters()
    torch.save({"weights": {n: p.detach().cpu() for n, p in experts}, "opt": _opt_state(trainer, experts),
                "first_expert": trainer.layout.ep_rank * (cfg.experts // cfg.ep)},
               os.path.join(tmp, f"experts-rank{trainer.rank}.pt"))
    if trainer.rank == 0:
        torch.save({"weights": {n: p.detach().cpu() for n, p in dense}, "opt": _opt_state(trainer, dense)},
                   os.path.join(tmp, "shared.pt"))
        with open(os.path.join(tmp, "history.json"), "w") as f:
            json.dump(trainer.history, f)
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump({"format": FORMAT, "step": step, "config": cfg.identity(),
                       "backend": cfg.backend, "world": trainer.world, "ep": cfg.ep}, f, indent=1)
    if trainer.world > 1:
        dist.barrier()
    if trainer.rank == 0:
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    if trainer.world > 1:
        dist.barrier()


def _restore(trainer: Any, named: list, blob: dict) -> None:
    import torch
    with torch.no_grad():
        for name, p in named:
            p.copy_(blob["weights"][name].to(p.device, p.dtype))
            state = blob["opt"].get(name) or {}
            if state:
                trainer.opt.state[p] = {k: (v.to(p.device, p.dtype) if torch.is_tensor(v) else v)
                                        for k, v in state.items()}


def load(trainer: Any, path: str) -> tuple[int, dict]:
    """Load the checkpoint at ``path`` into ``trainer``; returns (step, history)."""
    import torch
    meta = check_compatible(trainer.cfg, path)
    d = _dir(path)
    shard = os.path.join(d, f"experts-rank{trainer.rank}.pt")
    if not os.path.exists(shard):
        raise SigmaError(f"--resume {path}: {shard} is missing (the checkpoint has {meta['world']} ranks)")
    _restore(trainer, trainer.model.dense_parameters(), torch.load(os.path.join(d, "shared.pt")))
    _restore(trainer, trainer.model.expert_parameters(), torch.load(shard))
    with open(os.path.join(d, "history.json")) as f:
        history = json.load(f)
    return meta["step"], history
