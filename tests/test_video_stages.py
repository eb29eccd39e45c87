"""The video loop's three stages (read -> process -> write): a failure in any one stops the
others within seconds and surfaces the original error; Ctrl-C keeps what was processed.

Each test injects a failing or slow stage into :func:`core.video.stages.run_stages`, and one
runs the real :func:`core.video.convert_video` with a writer that fails.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.video.stages import run_stages


class Boom(RuntimeError):
    pass


def slow_reader(n=10_000, delay=0.05):
    """Decoding slower than the rest: the case that used to hang when the writer failed."""
    for i in range(n):
        time.sleep(delay)
        yield i


def timed(fn, limit=5.0):
    started = time.monotonic()
    fn()
    elapsed = time.monotonic() - started
    assert elapsed < limit, f"took {elapsed:.1f} s"
    return elapsed


def test_all_items_pass_in_order():
    written = []
    result = run_stages(range(50), lambda x: x * 2, written.append, queue_size=3)
    assert written == [x * 2 for x in range(50)] and result.written == 50
    assert not result.interrupted


def test_failing_writer_with_a_slow_reader_stops_everything():
    def write(item):
        if item == 3:
            raise Boom("disk full")

    def run():
        with pytest.raises(Boom, match="disk full"):
            run_stages(slow_reader(), lambda x: x, write, queue_size=2)
    timed(run)


def test_failing_reader_surfaces_its_error():
    def reader():
        yield 1
        yield 2
        raise Boom("corrupt packet")

    written = []

    def run():
        with pytest.raises(Boom, match="corrupt packet"):
            run_stages(reader(), lambda x: x, written.append)
    timed(run)


def test_failing_processor_stops_reader_and_writer():
    reads = []

    def reader():
        for i in range(10_000):
            reads.append(i)
            time.sleep(0.01)
            yield i

    def process(item):
        if item == 5:
            raise Boom("backend bug")
        return item

    def run():
        with pytest.raises(Boom, match="backend bug"):
            run_stages(reader(), process, lambda x: None, queue_size=2)
    timed(run)
    count = len(reads)
    time.sleep(0.3)
    assert len(reads) == count  # the reader has stopped too


def test_writer_stuck_inside_a_call_is_left_behind_not_waited_for():
    release = threading.Event()

    def write(item):
        release.wait(30)  # a writer blocked in a call we cannot interrupt

    def process(item):
        if item == 2:
            raise Boom("after the writer got stuck")
        return item

    def run():
        with pytest.raises(Boom):
            run_stages(range(10), process, write, join_timeout=1.0, queue_size=1)
    timed(run, limit=4.0)
    release.set()


def test_ctrl_c_keeps_every_processed_item():
    written = []

    def process(item):
        if item == 7:
            raise KeyboardInterrupt
        return item

    result = run_stages(slow_reader(delay=0.001), process, written.append, queue_size=4)
    assert result.interrupted and written == list(range(7))


def test_ctrl_c_inside_compiled_code_is_still_ctrl_c():
    """Ctrl-C landing inside a numba function (pymatting's foreground estimation) comes back
    as SystemError caused by the KeyboardInterrupt: still an interruption, not a failure."""
    written = []

    def process(item):
        if item == 5:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as exc:
                raise SystemError("CPUDispatcher returned a result with an exception set") from exc
        return item

    result = run_stages(range(100), process, written.append, queue_size=4)
    assert result.interrupted and written == list(range(5))


def test_chained_steps_run_in_order_and_a_failing_step_stops_everything():
    written = []
    result = run_stages(range(40), [lambda x: x + 1, lambda x: x * 2], written.append,
                        queue_size=2)
    assert written == [2 * (x + 1) for x in range(40)] and result.written == 40

    def first(item):
        if item == 7:
            raise Boom("segmenter crashed")
        return item

    def run():
        with pytest.raises(Boom, match="segmenter crashed"):
            run_stages(slow_reader(), [first, lambda x: x], lambda x: None, queue_size=2)
    timed(run)


def test_ctrl_c_with_chained_steps_keeps_what_the_last_step_finished():
    written = []

    def last(item):
        if item == 9:
            raise KeyboardInterrupt
        return item

    result = run_stages(slow_reader(delay=0.001), [lambda x: x, last], written.append,
                        queue_size=4)
    assert result.interrupted and written == list(range(9))


def test_convert_video_surfaces_a_writer_failure(tmp_path, monkeypatch):
    """The real loop: the encoder fails on the fifth frame, the error reaches the caller."""
    from core import video
    from core.video import writers

    original = writers.EncodedVideoWriter.write
    calls = []

    def failing_write(self, image, pts=None):
        calls.append(pts)
        if len(calls) == 5:
            raise OSError("No space left on device")
        return original(self, image, pts)

    monkeypatch.setattr(writers.EncodedVideoWriter, "write", failing_write)
    sample = Path(__file__).resolve().parents[1] / "samples" / "video" / "person.mp4"

    def run():
        with pytest.raises(OSError, match="No space left"):
            video.convert_video(sample, output=tmp_path / "out.mp4", progress=False,
                                max_frames=40)
    timed(run, limit=60.0)
    assert len(calls) == 5
