"""The malloc arena cap: set once at start unless the operator chose, and passed on to the worker processes."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "from bot.memory import limit_malloc_arenas; import os; print(limit_malloc_arenas(), os.environ.get('MALLOC_ARENA_MAX'))"


def _probe(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=base | env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_arenas_are_capped_at_two_and_children_inherit_the_cap() -> None:
    assert _probe() == "True 2"


def test_the_operators_choice_wins() -> None:
    assert _probe(MALLOC_ARENA_MAX="8") == "False 8"
