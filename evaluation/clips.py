"""Test and benchmark clips made here with PyAV: H.264 video of given frames, with a sound
of our choosing (a tone, a click at a known time) that may start before or after the
picture; and where a click landed in an output file.

One place for what the video, audio-offset and job tests and the jobs benchmark all need.
"""
from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

RATE = 48000


def tone(seconds: float, hz: float = 440.0, level: float = 0.2, rate: int = RATE) -> np.ndarray:
    """A sine tone, ``float32`` ``n`` samples in ``[-level, level]``."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def click(seconds: float, at: float, length: int = 96, level: float = 0.8,
          rate: int = RATE) -> np.ndarray:
    """Silence with a 2 ms click (``length`` samples) starting ``at`` seconds in."""
    sound = np.zeros(int(round(seconds * rate)), np.float32)
    start = int(round(at * rate))
    sound[start:start + length] = level
    return sound


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: int = 30,
               sound: np.ndarray | None = None, *, rate: int = RATE, audio_codec: str = "aac",
               fmt: str | None = None, first_frame: int = 0, audio_start: float = 0.0,
               video_options: dict | None = None) -> int:
    """An H.264 ``yuv420p`` clip of ``frames`` at ``fps``, with ``sound`` when given.

    Args:
        frames: ``uint8`` RGB ``H x W x 3`` images (even sides), in order.
        sound: ``float32`` ``n`` (mono) or ``channels x n`` samples at ``rate``.
        fmt: the container (PyAV's name) when the suffix does not say it.
        first_frame: the first frame's timestamp in frames (a picture that starts late).
        audio_start: seconds, on the file's clock, where the sound starts.
        video_options: libx264 options (``preset``, ``crf``).
    Returns:
        The number of frames written.
    """
    frames = iter(frames)
    first = next(frames)
    count = 0
    with av.open(str(path), "w", format=fmt) as out:
        video = out.add_stream("libx264", rate=fps, options=dict(video_options or {}))
        video.height, video.width = first.shape[:2]
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = Fraction(1, fps)
        audio = None
        if sound is not None:
            sound = np.atleast_2d(np.asarray(sound, np.float32))
            layout = "mono" if sound.shape[0] == 1 else "stereo"
            audio = out.add_stream(audio_codec, rate=rate)
            audio.layout = layout
        for image in (first, *frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = first_frame + count
            out.mux(video.encode(frame))
            count += 1
        out.mux(video.encode(None))
        if audio is not None:
            resampler = av.AudioResampler(format=audio.codec_context.codec.audio_formats[0].name,
                                          layout=layout, rate=rate)
            offset = int(round(audio_start * rate))
            for start in range(0, sound.shape[1], 1024):
                chunk = np.ascontiguousarray(sound[:, start:start + 1024])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate, frame.pts = rate, offset + start
                frame.time_base = Fraction(1, rate)
                for resampled in resampler.resample(frame):
                    out.mux(audio.encode(resampled))
            for resampled in resampler.resample(None):
                out.mux(audio.encode(resampled))
            out.mux(audio.encode(None))
    return count


def first_video_time(path: Path) -> float:
    """Seconds, on ``path``'s clock, of its first video frame."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return float(frame.pts * frame.time_base)


def click_time(path: Path) -> float:
    """Seconds, on ``path``'s clock, where its first audio stream first reaches half its
    peak: the click's onset (lossy codecs smear a click's peak, not its start).

    Raises:
        AssertionError: no click in the file (its loudest sample is under 0.3).
    """
    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.audio[0]))
    level = np.concatenate([np.abs(f.to_ndarray().astype(np.float64)).reshape(-1, f.samples).max(axis=0)
                            for f in frames])
    if frames[0].format.name.startswith("s16"):
        level /= 32768.0
    assert level.max() > 0.3, f"no click in {path}"
    i = int(np.argmax(level > level.max() / 2))
    # the frame holding sample i, and i's place in it
    sizes = np.cumsum([f.samples for f in frames])
    k = int(np.searchsorted(sizes, i, side="right"))
    within = i - (sizes[k - 1] if k else 0)
    return float(frames[k].pts * frames[k].time_base) + within / frames[k].sample_rate
