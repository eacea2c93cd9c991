"""The trainer's settings, the per-layer top-k schedule, and the checks made before training.

Nothing here imports torch, so the launcher can validate a command line (and print a clear error)
before it starts any rank.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field


class SigmaError(ValueError):
    """Bad input to the trainer, found before training starts."""


# The default progressive-sparsification schedule (docs/sigma.md): the two lowest layers route
# each token to 2 experts for the first 20% of the steps, the lowest one keeps 2 until 40%, then
# every layer is top-1.
DEFAULT_TOPK_SCHEDULE = "2,2@0.2;2@0.4"


@dataclass(frozen=True)
class TopkStage:
    """Per-layer top-k used for steps before ``end`` (a step number)."""

    topk: tuple[int, ...]
    end: int


@dataclass(frozen=True)
class TopkSchedule:
    """Per-layer top-k as a function of the step: stages in order, then top-1 everywhere.

    Written ``"k0,k1,...@END;k0,...@END"``: layer i uses ``ki`` (layers not listed use 1) for
    steps below END; END is a step number, or a fraction of the run when it contains a dot.
    ``"1"`` is top-1 from the start.
    """

    text: str
    stages: tuple[TopkStage, ...]
    layers: int

    def topk(self, step: int) -> tuple[int, ...]:
        for stage in self.stages:
            if step < stage.end:
                return stage.topk
        return (1,) * self.layers

    @classmethod
    def parse(cls, text: str, layers: int, experts: int, steps: int) -> "TopkSchedule":
        text = text.strip()
        if text == "1":
            return cls(text, (), layers)
        stages, last_end = [], 0
        for part in text.split(";"):
            m = re.fullmatch(r"\s*([0-9]+(?:\s*,\s*[0-9]+)*)\s*@\s*([0-9]*\.?[0-9]+)\s*", part)
            if not m:
                raise SigmaError(f"--topk-schedule: cannot read stage {part!r}; expected e.g. "
                                 f"'{DEFAULT_TOPK_SCHEDULE}' (per-layer top-k @ end step or fraction) or '1'")
            ks = [int(k) for k in m.group(1).split(",")]
            if len(ks) > layers:
                raise SigmaError(f"--topk-schedule: stage {part!r} lists {len(ks)} layers, the model has {layers}")
            if any(not 1 <= k <= experts for k in ks):
                raise SigmaError(f"--topk-schedule: top-k must be between 1 and --experts={experts}, got {ks}")
            end_text = m.group(2)
            end = round(float(end_text) * steps) if "." in end_text else int(end_text)
            if end < last_end or (end == last_end and "." not in end_text):
                raise SigmaError(f"--topk-schedule: stage ends must increase, {part!r} ends at step {end} "
                                 f"(previous {last_end})")
            if end == last_end:
                continue  # a fraction of a short run can round to an empty stage
            stages.append(TopkStage(tuple(ks) + (1,) * (layers - len(ks)), end))
            last_end = end
        return cls(text, tuple(stages), layers)


@dataclass
class Config:
    """Everything that decides what the trainer computes (model, data, optimization, layout)."""

    # model
    layers: int = 4
    dim: int = 64
    q_heads: int = 4
    k_heads: int = 1
    v_heads: int = 2
    head_dim: int = 16
    q_aug: float = 1.5
    experts: int = 16
    expert_hidden: int = 64
    seq: int = 64
    init_std: float = 0.02
    dtype: str = "float32"
    # routing and balancing
    topk_schedule: str = DEFAULT_TOPK_SCHEDULE
    balance: str = "global"          # "global" (counts all-reduced over DP) or "micro"
    micro_batch: int = 1             # sequences per micro-batch for balance="micro"
    lb_coeff: float = 1e-2
    # optimization
    steps: int = 200
    batch: int = 16                  # global batch in sequences
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 20
    weight_decay: float = 0.1
    clip: float = 1.0
    seed: int = 0
    # data
    data: str | None = None
    val_seqs: int = 64
    val_every: int = 50
    # layout
    ranks: int = 1
    ep: int = 1
    grad_sync: str = "buckets"       # "buckets" or "ddp"
    bucket_mb: float = 4.0
    # run control (not part of what is computed)
    backend: str = "mscomm"
    out: str = "sigma-run"
    resume: str | None = None
    stop_at: int | None = None
    ckpt_every: int = 0
    progress: bool = True
    timeout: float = 300.0
    extra: dict = field(default_factory=dict)

    # Fields that may differ between a checkpointed run and its resumption.
    RUN_CONTROL = ("backend", "out", "resume", "stop_at", "ckpt_every", "progress", "timeout", "extra",
                   "grad_sync", "bucket_mb")

    def schedule(self) -> TopkSchedule:
        return TopkSchedule.parse(self.topk_schedule, self.layers, self.experts, self.steps)

    @property
    def dp(self) -> int:
        """Data-parallel size of the dense weights (every rank holds a copy)."""
        return self.ranks

    def identity(self) -> dict:
        """The settings a checkpoint must match to be resumed."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in self.RUN_CONTROL}

    def validate(self) -> None:
        """Raise SigmaError for settings that cannot train (before any rank starts)."""
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise SigmaError(msg)

        for name in ("layers", "dim", "q_heads", "k_heads", "v_heads", "head_dim", "experts", "expert_hidden",
                     "seq", "steps", "batch", "ranks", "ep", "val_seqs", "micro_batch"):
            need(getattr(self, name) >= 1, f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        need(self.experts % self.ep == 0,
             f"--experts={self.experts} is not divisible by --ep={self.ep}: every expert-parallel rank must hold "
             f"the same number of experts (try --experts {self.ep * max(1, self.experts // self.ep)})")
        need(self.ranks % self.ep == 0,
             f"--ranks={self.ranks} is not divisible by --ep={self.ep}: the ranks split into expert-parallel "
             "groups of --ep ranks")
        need(self.batch % self.ranks == 0,
             f"--batch={self.batch} (the global batch) is not divisible by --ranks={self.ranks}: each "
             "data-parallel rank takes an equal share")
        need(self.val_seqs % self.ranks == 0,
             f"--val-seqs={self.val_seqs} is not divisible by --ranks={self.ranks}")
        need(self.q_heads % self.k_heads == 0 and self.q_heads % self.v_heads == 0,
             f"--q-heads={self.q_heads} must be a multiple of --k-heads={self.k_heads} and --v-heads={self.v_heads}")
        need(self.k_heads <= self.v_heads,
             f"DiffQKV attention compresses K more than V: --k-heads={self.k_heads} must not exceed "
             f"--v-heads={self.v_heads}")
        need(self.head_dim % 2 == 0, f"--head-dim must be even (rotary pairs), got {self.head_dim}")
        need(self.balance in ("global", "micro"), f"--balance must be 'global' or 'micro', got {self.balance!r}")
        need(self.balance != "micro" or (self.batch // self.ranks) % self.micro_batch == 0,
             f"--micro-batch={self.micro_batch} must divide the per-rank batch {self.batch // max(1, self.ranks)}")
        need(self.grad_sync in ("buckets", "ddp"), f"--grad-sync must be 'buckets' or 'ddp', got {self.grad_sync!r}")
        need(self.dtype in ("float32", "float64"), f"--dtype must be float32 or float64, got {self.dtype!r}")
        need(self.backend in ("mscomm", "gloo", "nccl"), f"--backend must be mscomm, gloo or nccl, got {self.backend!r}")
        need(self.stop_at is None or 0 < self.stop_at <= self.steps,
             f"--stop-at must be between 1 and --steps={self.steps}, got {self.stop_at}")
        self.schedule()
