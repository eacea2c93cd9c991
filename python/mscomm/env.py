"""The environment-variable registry (defined once, in C++) seen from Python.

``python -m mscomm.envdoc`` prints docs/environment.md.
"""

from __future__ import annotations

import os

from mscomm import _core


def registry() -> list[tuple[str, str, str]]:
    """Every variable mscomm reads: (name, default, meaning)."""
    return list(_core.env_registry())


def get(name: str) -> str:
    """The value of a registered variable, or its default."""
    for var, default, _ in _core.env_registry():
        if var == name:
            return os.environ.get(name) or default
    raise KeyError(f"{name} is not a registered mscomm environment variable")


def markdown() -> str:
    lines = [
        "# Environment variables",
        "",
        "Generated from the registry in `csrc/src/core/env.cpp` by `python -m mscomm.envdoc`; a test",
        "keeps this page and the registry in step. Every variable mscomm reads is listed here.",
        "",
        "| Variable | Default | Meaning |",
        "|---|---|---|",
    ]
    for name, default, meaning in registry():
        lines.append(f"| `{name}` | {f'`{default}`' if default else '(unset)'} | {meaning} |")
    return "\n".join(lines) + "\n"
