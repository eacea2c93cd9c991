"""The environment-variable registry (defined once, in C++) seen from Python.

``python -m mscomm.envdoc`` prints docs/environment.md.
"""

from __future__ import annotations

import difflib
import os
import warnings

from mscomm import _core

_warned: set[str] = set()


def registry() -> list[tuple[str, str, str]]:
    """Every variable mscomm reads: (name, default, meaning)."""
    return list(_core.env_registry())


def get(name: str) -> str:
    """The value of a registered variable, or its default; InvalidArgument when it is not valid."""
    for var, default, _ in _core.env_registry():
        if var == name:
            value = os.environ.get(name) or default
            _core.env_check_value(name, value)
            return value
    raise KeyError(f"{name} is not a registered mscomm environment variable")


def valid_values(name: str) -> str:
    """What a registered variable accepts, in words."""
    return _core.env_valid_values(name)


def nearest_known(name: str) -> str | None:
    """The registered variable whose name is closest to ``name`` (None when nothing is close)."""
    # Compared without the common prefix, which would make every name look alike.
    known = {var[len("MSCOMM_"):]: var for var, _, _ in _core.env_registry()}
    close = difflib.get_close_matches(name.removeprefix("MSCOMM_"), list(known), n=1, cutoff=0.6)
    return known[close[0]] if close else None


def check_environment() -> None:
    """Refuses invalid values of MSCOMM_ variables (InvalidArgument naming each one and its valid
    values) and warns once per name about set MSCOMM_ variables that mscomm does not know."""
    known = {var for var, _, _ in _core.env_registry()}
    for name in sorted(os.environ):
        if not name.startswith("MSCOMM_") or name in known or name in _warned:
            continue
        _warned.add(name)
        near = nearest_known(name)
        hint = f"; did you mean {near}?" if near else " (see docs/environment.md for the variables mscomm reads)"
        warnings.warn(f"environment variable {name} is not an mscomm variable and is ignored{hint}",
                      RuntimeWarning, stacklevel=3)
    _core.check_environment()


def markdown() -> str:
    lines = [
        "# Environment variables",
        "",
        "Generated from the registry in `csrc/src/core/env.cpp` by `python -m mscomm.envdoc`; a test",
        "keeps this page and the registry in step. Every variable mscomm reads is listed here.",
        "",
        "Values are checked when a communicator is created: a value outside the valid ones is refused",
        "with an error naming the variable, and a set `MSCOMM_` variable that is not listed here gets a",
        "warning naming the nearest listed one.",
        "",
        "| Variable | Default | Valid values | Meaning |",
        "|---|---|---|---|",
    ]
    for name, default, meaning in registry():
        lines.append(f"| `{name}` | {f'`{default}`' if default else '(unset)'} | {valid_values(name)} | {meaning} |")
    return "\n".join(lines) + "\n"
