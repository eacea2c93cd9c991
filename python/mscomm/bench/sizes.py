"""Message sizes, bus-bandwidth factors and the table format shared by every benchmark backend."""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "G": 1 << 30, "GB": 1 << 30}


def parse_size(text: str) -> int:
    """``"4K"`` -> 4096, ``"64M"`` -> 67108864, ``"100"`` -> 100."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?B?)\s*", text.upper())
    if not m:
        raise ValueError(f"bad size {text!r}; use a number with an optional K, M or G suffix (e.g. 4K, 64M)")
    return int(m.group(1)) * _UNITS[m.group(2)]


def size_list(min_bytes: int, max_bytes: int, factor: int) -> list[int]:
    if min_bytes <= 0 or max_bytes < min_bytes or factor < 2:
        raise ValueError("need 0 < --min <= --max and --factor >= 2")
    sizes, s = [], min_bytes
    while s <= max_bytes:
        sizes.append(s)
        s *= factor
    return sizes


def human(nbytes: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if nbytes >= scale and nbytes % scale == 0:
            return f"{nbytes // scale}{unit}"
    return f"{nbytes}B"


def iterations_for(nbytes: int) -> int:
    """Iterations per timed repetition: more for small messages, at least 3."""
    return int(max(3, min(1000, (64 << 20) // max(nbytes, 1 << 12) // 4)))
