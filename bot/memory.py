"""Fewer malloc arenas: glibc gives each thread that allocates its own arena (up to eight per core), and a
process of a dozen threads then holds several partly used arenas; two are plenty for threads that mostly wait on
the network. ``MALLOC_ARENA_MAX`` set by the operator wins; the processes that ``serve`` starts inherit it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2


def limit_malloc_arenas() -> bool:
    """Cap this process's arenas (and its children's) unless told otherwise; False where glibc is not the
    allocator or the operator chose."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    if not mallopt(M_ARENA_MAX, ARENAS):
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(ARENAS)
    return True
