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


def release_freed_memory() -> bool:
    """Give the pages of every freed block back to the OS (glibc ``malloc_trim(0)``, which
    also releases whole free pages inside the heap, not only at its top).

    With :func:`reuse_freed_memory` the heap keeps its peak; in a long-running service that
    peak creeps up as requests of different shapes overlap and fragment it. A service worker
    calls this after each reply is sent (service_common.admission), so its resident memory
    follows what its requests really hold. Costs a few milliseconds, plus page faults when
    the next request touches the pages again. A no-op returning ``False`` without glibc.
    """
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (``M_ARENA_MAX``). Each thread that allocates may get an
    arena of its own, and each keeps the memory it freed (up to the trim threshold set by
    :func:`reuse_freed_memory`): a server worker with a dozen threads would then hold a
    dozen heaps' peaks. Two arenas keep a worker's memory at about one request's peak.
    A no-op returning ``False`` where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_arena_max = -8
        return bool(libc.mallopt(m_arena_max, int(arenas)))
    except (OSError, AttributeError):
        return False


def limit_threads(threads: int) -> None:
    """Size every compute thread pool of this process to ``threads``: BLAS and OpenMP
    (through threadpoolctl), numba (pymatting's parallel loops), torch and OpenCV, and the
    environment for libraries imported later. A service worker calls it once after it is
    forked, so that W workers run about the machine's core count of threads, not W times it.
    """
    import os
    import sys

    threads = max(1, int(threads))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        log.debug("threadpoolctl missing: BLAS / OpenMP pools keep their size")
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules:  # imported later, torch reads OMP_NUM_THREADS
        sys.modules["torch"].set_num_threads(threads)
    import cv2

    cv2.setNumThreads(threads)
    log.info("compute thread pools limited to %d per process", threads)
