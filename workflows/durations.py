"""Durations as people write them in the policy file: ``90s``, ``15m``, ``24h``, ``7d``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``-style text; raise ValueError with the accepted forms otherwise."""
    cleaned = text.strip().replace(" ", "")
    pos, seconds = 0, 0.0
    for part in _PART.finditer(cleaned):
        if part.start() != pos:
            break
        seconds += int(part.group(1)) * _UNITS[part.group(2)]
        pos = part.end()
    if not cleaned or pos != len(cleaned):
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 15m, 24h, 7d or 1h30m")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out) or "0s"
