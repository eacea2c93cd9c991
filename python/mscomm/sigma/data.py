"""Byte-level training text: by default built from text that ships with Python itself.

The default corpus is the English documentation in ``pydoc_data.topics`` followed by the source
files of the standard library (sorted, up to a cap), so no download is needed. Every tenth
document is held out for validation. ``--data FILE`` uses any file instead (its last tenth is the
validation split). Batches are drawn from a generator seeded by (seed, step), so a step's global
batch is the same whatever the number of ranks, and a resumed run sees the same tokens.
"""

from __future__ import annotations

import math
import os
import sysconfig
from dataclasses import dataclass

import numpy as np

from mscomm.sigma.config import SigmaError

DEFAULT_CORPUS_BYTES = 4 << 20
VAL_EVERY_DOC = 10


@dataclass
class Corpus:
    train: np.ndarray   # uint8
    val: np.ndarray     # uint8
    source: str

    def unigram_nats(self) -> float:
        """Cross-entropy of the validation bytes under the training byte frequencies (add-one)."""
        counts = np.bincount(self.train, minlength=256).astype(np.float64) + 1.0
        logp = np.log(counts / counts.sum())
        val_counts = np.bincount(self.val, minlength=256).astype(np.float64)
        return float(-(val_counts * logp).sum() / max(1.0, val_counts.sum()))


def _python_documents(limit: int) -> list[bytes]:
    docs: list[bytes] = []
    try:
        from pydoc_data.topics import topics
        docs.extend(topics[k].encode("utf-8", "replace") for k in sorted(topics))
    except ImportError:
        pass
    stdlib = sysconfig.get_paths()["stdlib"]
    total = sum(map(len, docs))
    for name in sorted(os.listdir(stdlib)):
        if total >= limit:
            break
        if name.endswith(".py"):
            try:
                with open(os.path.join(stdlib, name), "rb") as f:
                    text = f.read()
            except OSError:
                continue
            docs.append(text)
            total += len(text)
    return docs


def load_corpus(path: str | None) -> Corpus:
    """The corpus of ``--data path`` (or Python's own text when None)."""
    if path is None:
        docs = _python_documents(DEFAULT_CORPUS_BYTES)
        train = b"".join(d for i, d in enumerate(docs) if i % VAL_EVERY_DOC != VAL_EVERY_DOC - 1)
        val = b"".join(d for i, d in enumerate(docs) if i % VAL_EVERY_DOC == VAL_EVERY_DOC - 1)
        source = f"python:{sysconfig.get_paths()['stdlib']} ({len(docs)} documents)"
    else:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise SigmaError(f"--data {path}: cannot read it ({e.strerror})") from None
        cut = len(raw) - len(raw) // VAL_EVERY_DOC
        train, val, source = raw[:cut], raw[cut:], os.path.abspath(path)
    return Corpus(np.frombuffer(train, dtype=np.uint8), np.frombuffer(val, dtype=np.uint8), source)


def check_corpus(corpus: Corpus, seq: int, batch: int, val_seqs: int) -> None:
    """Raise SigmaError when the data cannot fill one batch (or one validation pass)."""
    need_train = batch * (seq + 1)
    if len(corpus.train) < need_train:
        raise SigmaError(
            f"data {corpus.source}: the training split has {len(corpus.train)} bytes, too small for one batch "
            f"of --batch={batch} sequences of --seq={seq} (+1) bytes = {need_train} bytes; use a larger file or a "
            "smaller --batch/--seq")
    if len(corpus.val) < seq + 1:
        raise SigmaError(
            f"data {corpus.source}: the validation split (last tenth) has {len(corpus.val)} bytes, fewer than "
            f"one sequence of --seq={seq} (+1) bytes")


def batch_starts(n: int, seq: int, batch: int, seed: int, step: int) -> np.ndarray:
    """Start offsets of the global batch of ``step`` (the same for every layout)."""
    rng = np.random.default_rng([seed, step, 0x5167])
    return rng.integers(0, n - seq, size=batch)


def val_starts(n: int, seq: int, count: int) -> np.ndarray:
    """Evenly spaced start offsets of the fixed validation sequences."""
    top = n - seq - 1
    return np.array([math.floor(i * top / max(1, count - 1)) for i in range(count)], dtype=np.int64) if count > 1 \
        else np.zeros(1, dtype=np.int64)


def windows(data: np.ndarray, starts: np.ndarray, seq: int) -> np.ndarray:
    """Rows of ``seq + 1`` bytes at ``starts`` (inputs are ``[:, :-1]``, targets ``[:, 1:]``)."""
    idx = starts[:, None] + np.arange(seq + 1)[None, :]
    return data[idx].astype(np.int64)
