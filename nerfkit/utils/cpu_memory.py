"""Keeping freed memory in the process on glibc, where CPU training otherwise re-faults gigabytes every step.

glibc serves large allocations with fresh mmap'd pages and returns them to the OS when freed. A NeRF step allocates
and frees activations of hundreds of megabytes each, so every step pays for millions of page faults (a third of the
step's CPU time at vanilla-nerf's settings). Serving them from the heap and never trimming it trades a higher peak
resident size for that time; it is what jemalloc or tcmalloc would give, without preloading a library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Asks glibc to reuse freed memory instead of returning it; False where this is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # A trim threshold of -1 reads as the largest size_t: the heap is never shrunk.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))
