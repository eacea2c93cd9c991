"""Every test must leave /dev/shm as it found it (see harness.py for the multi-process runner)."""

from __future__ import annotations

import os

import pytest

from harness import mscomm_segments


@pytest.fixture(autouse=True)
def no_leaked_segments():
    """Every test must leave /dev/shm as it found it."""
    before = mscomm_segments()
    yield
    leaked = mscomm_segments() - before
    for path in leaked:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    assert not leaked, f"test left shared-memory segments behind: {sorted(leaked)}"
