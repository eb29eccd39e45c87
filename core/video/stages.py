"""Three stages that overlap: read -> process -> write, a thread each for reading and
writing, processing in the calling thread (so Ctrl-C lands there).

A failure in any stage stops the other two within ``poll`` seconds (every wait is a short
timeout that checks a shared "abort" flag) and the original exception is raised to the
caller; nothing waits forever on a queue that nobody will fill or empty. Ctrl-C is
different: reading stops, but what was already processed is still written, so the output
is a playable file holding every frame done so far.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("core.video")

_END = object()


@dataclass
class StagesResult:
    """What :func:`run_stages` did: ``written`` items, and whether Ctrl-C cut it short."""

    written: int
    interrupted: bool


def run_stages(items: Iterable[Any], process: Callable[[Any], Any], write: Callable[[Any], None],
               *, queue_size: int = 8, poll: float = 0.1, join_timeout: float = 5.0,
               on_processed: Callable[[Any, Any], None] | None = None) -> StagesResult:
    """Run ``write(process(item))`` for each item of ``items``, the three overlapping.

    Args:
        items: the reader (iterated in a thread of its own).
        process: the per-item function (runs in the calling thread).
        write: the writer (called in a thread of its own, in order).
        queue_size: items buffered between two stages.
        poll: how often a waiting stage checks whether another one failed, in seconds.
        join_timeout: how long to wait for a reader or writer stuck inside a call after a
            failure elsewhere (it is left behind as a daemon thread).
        on_processed: called as ``on_processed(item, output)`` after each item is processed
            (progress bars, previews); it may raise to stop everything.
    Returns:
        :class:`StagesResult`.
    Raises:
        The first exception any stage raised (after the others have stopped).
    """
    abort = threading.Event()          # a stage failed: everyone stops now
    stop_reading = threading.Event()   # Ctrl-C: no more input; the output is still written
    errors: list[BaseException] = []
    to_process: queue.Queue = queue.Queue(maxsize=queue_size)
    to_write: queue.Queue = queue.Queue(maxsize=queue_size)
    written = 0

    def fail(exc: BaseException) -> None:
        errors.append(exc)
        abort.set()

    def put(q: queue.Queue, item, *give_up: threading.Event) -> bool:
        while not any(e.is_set() for e in give_up):
            try:
                q.put(item, timeout=poll)
                return True
            except queue.Full:
                continue
        return False

    def get(q: queue.Queue):
        while not abort.is_set():
            try:
                return q.get(timeout=poll)
            except queue.Empty:
                continue
        return _END

    def read() -> None:
        try:
            for item in items:
                if abort.is_set() or stop_reading.is_set():
                    break
                if not put(to_process, item, abort, stop_reading):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            fail(exc)
        finally:
            put(to_process, _END, abort, stop_reading)

    def write_all() -> None:
        nonlocal written
        try:
            while True:
                item = get(to_write)
                if item is _END:
                    break
                write(item)
                written += 1
        except BaseException as exc:  # noqa: BLE001
            fail(exc)

    reader = threading.Thread(target=read, name="video-read", daemon=True)
    writer = threading.Thread(target=write_all, name="video-write", daemon=True)
    reader.start()
    writer.start()
    interrupted = False
    try:
        while True:
            item = get(to_process)
            if item is _END:
                break
            output = process(item)
            if not put(to_write, output, abort):
                break
            if on_processed is not None:
                on_processed(item, output)
    except KeyboardInterrupt:
        interrupted = True
        stop_reading.set()
    except BaseException as exc:  # noqa: BLE001
        fail(exc)
    finally:
        stop_reading.set()
        put(to_write, _END, abort)
        # After Ctrl-C the writer drains what was processed; after a failure it gives up.
        writer.join(timeout=join_timeout if abort.is_set() else None)
        reader.join(timeout=join_timeout)
        if reader.is_alive() or writer.is_alive():
            log.warning("a video stage is still busy inside a call after a failure; left behind")
    if errors:
        raise errors[0]
    return StagesResult(written, interrupted)
