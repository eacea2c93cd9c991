"""The bundled Sigma trainer: a mixture-of-experts byte-level language model trained with expert
and data parallelism over torch.distributed (backend "mscomm", or gloo for comparison).

Run it with ``mscomm-sigma-train`` (see docs/sigma.md). This is the only part of mscomm that
imports torch at module level; ``import mscomm.sigma`` itself stays light (settings only).
"""

from mscomm.sigma.config import DEFAULT_TOPK_SCHEDULE, Config, SigmaError, TopkSchedule

__all__ = ["Config", "DEFAULT_TOPK_SCHEDULE", "SigmaError", "TopkSchedule"]
