"""Admission control: a service computes as many requests as it has slots (one per worker
process), a bounded queue holds a few more, and beyond that a request is refused at once
with 503 and ``Retry-After``, so a burst makes some callers come back later instead of every
caller wait for minutes. Under the production server the counts are shared by all workers.

Each request also has a deadline: one that waits in the queue longer than that is refused
too (the caller would rather retry than wait), and the time left bounds the calls it makes
to other services.
"""
from __future__ import annotations

import functools
import math
import threading
import time

from flask import current_app, g, has_app_context, make_response

from core.runtime import release_freed_memory
from service_common.errors import ServiceUnavailable

# service package name -> the Admission the production server made before forking workers
SHARED_ADMISSION: dict[str, "Admission"] = {}


class Busy(ServiceUnavailable):
    """Every slot and queue place is taken, or the wait passed the deadline (503)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, "busy", retry_after)


class Admission:
    """Slots and a waiting queue, for one process or (``shared=True``) for all the worker
    processes forked from the one that made it.

    Args:
        slots: requests computed at once.
        queue: requests allowed to wait for a slot; more are refused at once.
        deadline: seconds a request may take in all; waiting longer for a slot is refused.
        shared: keep the counts in shared memory (``multiprocessing``), so that every
            gunicorn worker forked afterwards sees the same slots and queue.
    """

    def __init__(self, slots: int = 1, queue: int = 2, deadline: float = 60.0,
                 shared: bool = False):
        if slots < 1 or queue < 0 or deadline <= 0:
            raise ValueError(f"need slots >= 1, queue >= 0, deadline > 0; got {slots}, "
                             f"{queue}, {deadline}")
        self.slots, self.queue, self.deadline = slots, queue, deadline
        if shared:
            import multiprocessing

            ctx = multiprocessing.get_context("fork")
            self._cond = ctx.Condition(ctx.Lock())
            # running, waiting, mean seconds in a slot (for Retry-After)
            self._state = ctx.Array("d", [0.0, 0.0, 1.0], lock=False)
        else:
            self._cond = threading.Condition()
            self._state = [0.0, 0.0, 1.0]

    @property
    def running(self) -> int:
        return int(self._state[0])

    @property
    def waiting(self) -> int:
        return int(self._state[1])

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue ahead, at the mean service time."""
        return max(1, math.ceil(self._state[2] * (self.waiting + 1) / self.slots))

    def _busy(self, why: str) -> Busy:
        return Busy(f"busy: {why}; retry in {self.retry_after()} s", self.retry_after())

    def enter(self) -> float:
        """Take a slot, waiting in the queue if there is room.

        Returns:
            The deadline (``time.monotonic()`` seconds) of this request.
        Raises:
            Busy: no room in the queue, or the deadline passed while waiting.
        """
        deadline = time.monotonic() + self.deadline
        state = self._state
        with self._cond:
            if state[0] >= self.slots and state[1] >= self.queue:
                raise self._busy(f"{self.running} request(s) computing and {self.waiting} "
                                 "waiting, the most this service takes (QUEUE setting)")
            state[1] += 1
            try:
                while state[0] >= self.slots:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise self._busy(f"waited {self.deadline:g} s for a free slot, the "
                                         "request deadline (REQUEST_DEADLINE setting)")
                    self._cond.wait(timeout=left)
            finally:
                state[1] -= 1
            state[0] += 1
        return deadline

    def leave(self, started: float) -> None:
        with self._cond:
            self._state[0] -= 1
            self._state[2] = 0.8 * self._state[2] + 0.2 * (time.monotonic() - started)
            self._cond.notify()

    def describe(self) -> dict:
        return {"slots": self.slots, "queue": self.queue, "deadline_s": self.deadline,
                "running": self.running, "waiting": self.waiting}


def admitted(view):
    """Decorate a computing endpoint: it runs only with a slot of the app's
    :class:`Admission` (``app.extensions["admission"]``); ``g.deadline`` is its deadline."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        admission: Admission = current_app.extensions["admission"]
        metrics = current_app.extensions.get("metrics")
        try:
            g.deadline = admission.enter()
        except Busy:
            if metrics is not None:
                metrics.rejected()
            raise  # the app reads the rest of the body before answering (service_common.app)
        started = time.monotonic()
        if metrics is not None:
            metrics.queue_depth(admission.running + admission.waiting)
        try:
            response = make_response(view(*args, **kwargs))
        finally:
            admission.leave(started)
            if metrics is not None:
                metrics.queue_depth(admission.running + admission.waiting)
        # Once the reply is sent, give the request's freed arrays back to the OS, even while
        # another request computes in this worker: a worker that is never idle would
        # otherwise keep its heap's peak (benchmarks/load.py --soak).
        response.call_on_close(release_freed_memory)
        return response
    return wrapper


def seconds_left(default: float) -> float:
    """Time left before this request's deadline (``default`` outside an admitted request)."""
    deadline = g.get("deadline") if has_app_context() else None
    if deadline is None:
        return default
    return max(0.1, min(default, deadline - time.monotonic()))
