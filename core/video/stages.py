"""Stages that overlap: read -> process (one or more steps) -> write, a thread each for
reading, writing and every processing step but the last, which runs in the calling thread
(so Ctrl-C lands there). The video loop has two processing steps: segmentation of one
frame runs while the previous one is matted and rendered.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("core.video")

_END = object()


def _caused_by_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C in disguise: a KeyboardInterrupt that landed inside a
    compiled function comes back as that function's error with the interrupt as its
    cause (numba, which pymatting's foreground estimation uses, raises ``SystemError:
    ... returned a result with an exception set``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass
class StagesResult:
    """What :func:`run_stages` did: ``written`` items, and whether Ctrl-C cut it short."""

    written: int
    interrupted: bool


def run_stages(items: Iterable[Any], process: Callable[[Any], Any] | Sequence[Callable[[Any], Any]],
               write: Callable[[Any], None], *, queue_size: int = 8, poll: float = 0.1,
               join_timeout: float = 5.0,
               on_processed: Callable[[Any, Any], None] | None = None) -> StagesResult:
    """Run ``write(process(item))`` for each item of ``items``, the stages overlapping.

    Args:
        items: the reader (iterated in a thread of its own).
        process: the per-item function (runs in the calling thread), or a chain of them,
            ``[f, g, ...]`` for ``...g(f(item))``: each but the last in a thread of its own,
            items passing each step in order.
        write: the writer (called in a thread of its own, in order).
        queue_size: items buffered between two stages.
        poll: how often a waiting stage checks whether another one failed, in seconds.
        join_timeout: how long to wait for a stage thread stuck inside a call after a
            failure elsewhere (it is left behind as a daemon thread).
        on_processed: called as ``on_processed(item, output)`` after each item is processed
            (progress bars, previews); it may raise to stop everything. ``item`` is what the
            last step was given.
    Returns:
        :class:`StagesResult`. After Ctrl-C (in the last step) reading and the earlier
        steps stop; every item the last step finished is still written.
    Raises:
        The first exception any stage raised (after the others have stopped).
    """
    steps = [process] if callable(process) else list(process)
    if not steps:
        raise ValueError("run_stages needs at least one processing step")
    abort = threading.Event()          # a stage failed: everyone stops now
    stop_reading = threading.Event()   # Ctrl-C: no more input; the output is still written
    errors: list[BaseException] = []
    # queues[0]: reader -> first step; queues[i]: step i-1 -> step i; last: -> writer
    queues = [queue.Queue(maxsize=queue_size) for _ in range(len(steps) + 1)]
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

    def get(q: queue.Queue, *give_up: threading.Event):
        give_up = give_up or (abort,)
        while not any(e.is_set() for e in give_up):
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
                if not put(queues[0], item, abort, stop_reading):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            fail(exc)
        finally:
            put(queues[0], _END, abort, stop_reading)

    def step_all(index: int) -> None:
        """A processing step in a thread: everything it is given, in order, then the end.
        After Ctrl-C it stops like the reader: the output holds the items the last step
        finished."""
        try:
            while True:
                item = get(queues[index], abort, stop_reading)
                if item is _END:
                    break
                if not put(queues[index + 1], steps[index](item), abort, stop_reading):
                    return
        except BaseException as exc:  # noqa: BLE001
            fail(exc)
        finally:
            put(queues[index + 1], _END, abort, stop_reading)

    def write_all() -> None:
        nonlocal written
        try:
            while True:
                item = get(queues[-1])
                if item is _END:
                    break
                write(item)
                written += 1
        except BaseException as exc:  # noqa: BLE001
            fail(exc)

    threads = [threading.Thread(target=read, name="video-read", daemon=True)]
    threads += [threading.Thread(target=step_all, args=(i,), name=f"video-step-{i}", daemon=True)
                for i in range(len(steps) - 1)]
    writer = threading.Thread(target=write_all, name="video-write", daemon=True)
    for thread in threads + [writer]:
        thread.start()
    last, inbox, outbox = steps[-1], queues[-2], queues[-1]
    interrupted = False
    try:
        while True:
            item = get(inbox)
            if item is _END:
                break
            output = last(item)
            if not put(outbox, output, abort):
                break
            if on_processed is not None:
                on_processed(item, output)
    except KeyboardInterrupt:
        interrupted = True
        stop_reading.set()
    except BaseException as exc:  # noqa: BLE001
        if _caused_by_ctrl_c(exc):
            interrupted = True
        else:
            fail(exc)
    finally:
        stop_reading.set()
        put(outbox, _END, abort)
        # After Ctrl-C the writer drains what was processed; after a failure it gives up.
        writer.join(timeout=join_timeout if abort.is_set() else None)
        for thread in threads:
            thread.join(timeout=join_timeout)
        if any(t.is_alive() for t in threads + [writer]):
            log.warning("a video stage is still busy inside a call after a failure; left behind")
    if errors:
        raise errors[0]
    return StagesResult(written, interrupted)
