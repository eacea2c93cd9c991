"""The documentation that is generated must match its source."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mscomm import env

ROOT = Path(__file__).resolve().parents[1]


def test_environment_page_matches_registry():
    page = ROOT / "docs" / "environment.md"
    if not page.exists():
        pytest.skip("not running from a source checkout")
    assert page.read_text() == env.markdown(), "regenerate with: python -m mscomm.envdoc > docs/environment.md"


def test_every_variable_read_is_registered():
    names = {name for name, _, _ in env.registry()}
    sources = list((ROOT / "csrc").rglob("*.[ch]pp")) + list((ROOT / "python" / "mscomm").rglob("*.py"))
    if not sources:
        pytest.skip("not running from a source checkout")
    used = {m for path in sources for m in re.findall(r"\bMSCOMM_[A-Z0-9_]+\b", path.read_text())}
    macros = {"MSCOMM_CHECK_ARG", "MSCOMM_MULTIVERSION", "MSCOMM_INLINE", "MSCOMM_DEFINE_KERNELS", "MSCOMM_STREAMING"}
    assert used - macros - names == set(), "read but not in the registry (csrc/src/core/env.cpp)"


def test_get_rejects_unregistered_names():
    with pytest.raises(KeyError):
        env.get("MSCOMM_NOT_A_VARIABLE")
