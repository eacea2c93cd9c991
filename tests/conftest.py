"""Every test must leave /dev/shm as it found it (see harness.py for the multi-process runner)."""

from __future__ import annotations

import os

import pytest

from harness import SESSION_TAG, STARTED_TAGS, mscomm_segments


@pytest.fixture(autouse=True)
def no_leaked_segments():
    """Every test must leave /dev/shm as it found it."""
    first_job = len(STARTED_TAGS)
    before = mscomm_segments([SESSION_TAG])
    yield
    leaked = mscomm_segments([SESSION_TAG, *STARTED_TAGS[first_job:]]) - before
    for path in leaked:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    assert not leaked, f"test left shared-memory segments behind: {sorted(leaked)}"
