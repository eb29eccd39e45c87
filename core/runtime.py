"""Process-wide runtime tuning shared by the video pipeline and the services."""
from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

_MALLOC_TUNED = False


def reuse_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed blocks of up to 32 MB for reuse.

    By default glibc serves each block over 128 kB (one 360x240 float frame is 1 MB) with a
    fresh ``mmap`` and unmaps it on free, so every temporary array of every frame pays
    page faults on first touch (several times slower per-frame matting; docs/video.md).
    Process-wide: the heap then keeps its peak size, which for a video job is a few
    frames' worth. A no-op returning ``False`` where there is no glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = bool(libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
                  and libc.mallopt(m_trim_threshold, 512 * 1024 * 1024))
    except (OSError, AttributeError):
        ok = False
    _MALLOC_TUNED = ok
    log.debug("glibc malloc tuned for per-frame arrays: %s", ok)
    return ok
