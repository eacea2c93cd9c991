"""The checks made before training (torch-free, so the launcher runs them before any rank starts)."""

from __future__ import annotations

from mscomm.sigma import checkpoint
from mscomm.sigma.config import Config
from mscomm.sigma.data import Corpus, check_corpus, load_corpus


def preflight(cfg: Config) -> Corpus:
    """Raise SigmaError for any setting, data or checkpoint that cannot train; returns the corpus."""
    cfg.validate()
    corpus = load_corpus(cfg.data)
    check_corpus(corpus, cfg.seq, cfg.batch, cfg.val_seqs)
    if cfg.resume:
        checkpoint.check_compatible(cfg, cfg.resume)
    return corpus
