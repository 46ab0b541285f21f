"""Giving freed memory back to the operating system (:func:`give_back_memory`).

glibc's allocator keeps what a thread freed in that thread's arena for the next
allocation; after a burst of large, short-lived buffers (the service's uploads) the
process's resident memory stays high although nothing uses it. ``malloc_trim(0)``
returns the free pages of every arena. Elsewhere (musl, macOS) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["give_back_memory"]


@functools.cache
def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def give_back_memory() -> bool:
    """Returns the allocator's free memory to the system; False where that is not
    possible (no glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
