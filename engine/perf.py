"""Process-level speed settings that our entry points (CLI, server, benchmarks) apply."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_BIG = 256 * 1024 * 1024


def tune_malloc() -> bool:
    """Keep numpy's large temporaries on the heap instead of fresh mmaps (glibc only).

    By default glibc serves blocks over 128 KiB-32 MiB with mmap and returns them on free,
    so a training step's activations are page-faulted in afresh every step. Raising the
    mmap and trim thresholds lets freed blocks be reused. Returns True when applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl, ...): nothing to tune
    ok = mallopt(_M_MMAP_THRESHOLD, _BIG) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, _BIG) == 1 and ok
    return ok
