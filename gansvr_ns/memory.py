"""Keep the memory a training step frees for the next step (glibc's malloc, CPU training).

A gansvr step on the CPU allocates a few dozen tensors of (samples x width) floats, 16 MB each at the defaults,
and frees them at its end. glibc's malloc serves such sizes with fresh `mmap`s, or trims the heap they came from,
so every step faults all that memory in again, page by page. `keep_freed_memory` asks malloc (through `mallopt`)
to serve them from the heap and to keep freed memory there: the process's size stays at its peak, and the next
step reuses the same pages. It changes no number the step computes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20
"""Allocations up to this size come from the heap (glibc's upper limit on 64-bit systems)."""
TRIM_THRESHOLD = 2**31 - 1
"""Free memory at the top of the heap kept rather than returned to the system (the largest value `mallopt` takes)."""


@lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory for reuse (module docstring). Returns whether it could: False off
    Linux or with another C library, where nothing is changed. Process-wide; later calls do nothing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all(mallopt(option, value) == 1 for option, value in settings)
