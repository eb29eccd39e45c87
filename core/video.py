"""Video: people from one video composited over another, with sound.

Reader -> per-frame function -> writer, as in RobustVideoMatting's ``inference_utils`` /
``convert_video``:

- :class:`VideoReader` decodes a file with PyAV and yields :class:`Frame` s (``uint8`` RGB
  ``H x W x 3``, optionally resized with the image fit modes) with their timestamps;
  :class:`VideoInfo` holds size, frame rate, length and the audio stream's facts.
- :class:`BackgroundSource` gives the background for a timestamp: a video looped (or
  trimmed) to the foreground's length, an image, a colour or a blur spec.
- :class:`FrameProcessor` is the per-frame function: segment -> temporal smoothing ->
  trimap -> matte -> render.
- Writers (context managers; ``write(image, pts)``): :class:`EncodedVideoWriter` for
  MP4/H.264 composites, WebM/VP9 or MOV/ProRes 4444 with alpha and grey alpha-matte
  videos; :class:`PngSequenceWriter` for a folder of PNGs. The foreground's audio is
  remuxed (or transcoded where the container cannot hold it) by :class:`AudioCopier`.
- :func:`convert_video` wires them with a thread per stage (decode, process, encode), a
  tqdm progress bar and a clean close on Ctrl-C. The CLI (``python -m core.video``),
  the notebook, the benchmarks and the tests all call it.
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core.compositing import FIT_MODES, fit_image, make_background
from core.images import IMAGE_FORMATS, read_image_file, to_float
from core.trimap import TrimapParams, has_person, mask_to_trimap

log = logging.getLogger(__name__)

OUTPUT_TYPES = ("composite", "transparent", "alpha", "png")
TRANSPARENT_FORMATS = ("webm", "mov")
DEFAULT_SEGMENTER = "mediapipe"
DEFAULT_MATTER = "guided-filter"
# A narrower band than the photo default (10 + 10 iterations of a 5 px kernel, ~40 px at
# any size): scaled with the person, ~2 iterations at 360x240, ~4 at 720p.
VIDEO_TRIMAP = TrimapParams(band_scale=0.06)
# Audio codecs each container takes as they are (remux); anything else is transcoded.
REMUX_AUDIO = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "matroska": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "vorbis", "flac",
                 "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "webm": {"opus", "vorbis"},
}
TRANSCODE_AUDIO = {"mp4": "aac", "mov": "aac", "matroska": "libopus", "webm": "libopus"}
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg",
                  ".ts", ".wmv", ".flv", ".ogv"}


class VideoError(ValueError):
    """A video we cannot read or write as asked; the message says why."""


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class AudioInfo:
    """The first audio stream of a file."""

    codec: str
    sample_rate: int
    channels: int
    layout: str
    time_base: Fraction


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video file's first video stream (``frame_count`` may be estimated)."""

    path: str
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float | None
    time_base: Fraction
    codec: str
    audio: AudioInfo | None = None
    start_pts: int = 0   # the video stream's start time, in time_base units

    @property
    def start_time(self) -> float:
        """Seconds at which the video stream starts (readers count from here)."""
        return float(self.start_pts * self.time_base)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``, the order :func:`core.compositing.fit_image` takes."""
        return self.height, self.width


@dataclass
class Frame:
    """One decoded frame: ``image`` is ``uint8`` RGB ``H x W x 3``; ``pts`` counts
    ``time_base`` units from the first frame (so the first frame is at 0)."""

    image: np.ndarray
    index: int
    pts: int
    time_base: Fraction

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


def probe(path) -> VideoInfo:
    """Read a video's size, frame rate, length and audio facts without decoding it.

    Raises:
        VideoError: missing file, not a video, or no video stream.
    """
    import av

    path = str(path)
    if not os.path.isfile(path):
        raise VideoError(f"no such video file: {path}")
    try:
        container = av.open(path)
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot open {path} as a video: {exc}") from None
    with container:
        return _info(container, path)


def _info(container, path: str) -> VideoInfo:
    if not container.streams.video:
        raise VideoError(f"{path} has no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    fps = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not fps:
        raise VideoError(f"{path}: cannot tell the frame rate")
    fps = Fraction(fps)
    duration = None
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    frames = int(stream.frames or 0)
    if frames <= 0 and duration:
        frames = int(round(duration * fps))
    audio = None
    if container.streams.audio:
        a = container.streams.audio[0]
        actx = a.codec_context
        audio = AudioInfo(codec=actx.name, sample_rate=int(actx.sample_rate or 0),
                          channels=int(actx.channels or 0),
                          layout=getattr(actx.layout, "name", "") or "",
                          time_base=Fraction(a.time_base) if a.time_base else Fraction(1, 1))
    return VideoInfo(path=path, width=int(ctx.width), height=int(ctx.height), fps=fps,
                     frame_count=frames, duration=duration,
                     time_base=Fraction(stream.time_base or Fraction(1, 1000)),
                     codec=ctx.name, audio=audio, start_pts=int(stream.start_time or 0))


class VideoReader:
    """Decode a video file frame by frame (PyAV, with FFmpeg's decoding threads).

    Args:
        path: any file FFmpeg reads.
        size: ``(height, width)`` to resize every frame to with ``fit``; ``None`` keeps
            the source size.
        fit: :data:`core.compositing.FIT_MODES`.
        max_frames: stop after this many frames (``None``: all).
    Iterating yields :class:`Frame` s; ``len()`` is the (estimated) number of frames.
    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path, size: tuple[int, int] | None = None, fit: str = "cover",
                 max_frames: int | None = None):
        import av

        if fit not in FIT_MODES:
            raise ValueError(f"fit must be one of {FIT_MODES}, got {fit!r}")
        self.info = probe(path)
        self.size, self.fit, self.max_frames = size, fit, max_frames
        self._container = av.open(str(path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"

    def __len__(self) -> int:
        n = self.info.frame_count
        return min(n, self.max_frames) if self.max_frames is not None else n

    def __iter__(self) -> Iterator[Frame]:
        tb = self.info.time_base
        step = max(int(round(1 / (self.info.fps * tb))), 1)  # one frame, in time_base units
        last = None
        for index, av_frame in enumerate(self._container.decode(self._stream)):
            if self.max_frames is not None and index >= self.max_frames:
                break
            if av_frame.pts is None:  # some raw streams: count frames instead
                pts = last + step if last is not None else 0
            else:
                pts = av_frame.pts - self.info.start_pts
            if last is not None and pts <= last:  # keep timestamps strictly increasing
                pts = last + 1
            last = pts
            yield Frame(self._rgb(av_frame), index, int(pts), tb)

    def _rgb(self, av_frame) -> np.ndarray:
        """The frame as ``uint8`` RGB at ``self.size``: FFmpeg's swscale converts and scales
        in one pass (area averaging, ~2x faster than converting then ``cv2.resize``), then
        :func:`core.compositing.fit_image` crops or pads to the exact size."""
        if self.size is None:
            return av_frame.to_ndarray(format="rgb24")
        h, w = self.size
        ih, iw = av_frame.height, av_frame.width
        if self.fit == "stretch":
            nw, nh = w, h
        else:
            scale = max(h / ih, w / iw) if self.fit == "cover" else min(h / ih, w / iw)
            nw, nh = max(int(round(iw * scale)), 1), max(int(round(ih * scale)), 1)
        if (nw, nh) != (iw, ih):
            av_frame = av_frame.reformat(width=nw, height=nh, format="rgb24", interpolation="AREA")
        return np.ascontiguousarray(fit_image(av_frame.to_ndarray(format="rgb24"), self.size, self.fit))

    def close(self) -> None:
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BackgroundSource:
    """The background for each output frame, ``float32`` ``H x W x 3`` in ``[0, 1]``.

    ``spec`` is a video file (looped when shorter than the foreground, trimmed when
    longer: frame ``i`` at time ``t`` shows the background at ``t mod duration``), an image
    file, an RGB array, or a :func:`core.compositing.make_background` string (colour,
    ``blur``, ``blur:STRENGTH``). Files are fitted to ``size`` with ``fit``.
    """

    # Keep a looping background's decoded frames (uint8) in memory up to this many bytes:
    # ~1000 frames at 360x240, ~130 at 1080p; longer clips are decoded again on each loop.
    CACHE_BYTES = 256 * 1024 * 1024

    def __init__(self, spec, size: tuple[int, int], fit: str = "cover"):
        self.size, self.fit, self.spec = size, fit, spec
        self.kind = "spec"
        self._still = None
        self._reader = None
        if isinstance(spec, np.ndarray):
            self.kind, self._still = "image", make_background(spec, np.zeros(size + (3,), np.float32), fit)
        elif isinstance(spec, (str, Path)) and os.path.isfile(str(spec)):
            path = str(spec)
            if Path(path).suffix.lower().lstrip(".") in IMAGE_FORMATS:
                self.kind = "image"
                self._still = to_float(fit_image(read_image_file(path), size, fit))
            else:
                self.kind, self.path = "video", path
                self.info = probe(path)
                self._cache: list[tuple[float, np.ndarray]] | None = []
                self._cache_times: list[float] = []
                self._cache_bytes = 0
                self._duration: float | None = None
                self._restart()
        elif isinstance(spec, (str, Path)) and Path(str(spec)).suffix.lower() in VIDEO_SUFFIXES | {
                "." + f for f in IMAGE_FORMATS}:
            raise VideoError(f"background file not found: {spec}")
        else:
            text = "" if spec is None else str(spec)
            if text.strip() == "transparent":
                raise ValueError("background 'transparent' is output_type='transparent'")
            make_background(text, np.zeros((2, 2, 3), np.float32))  # validate now, fail early

    def describe(self) -> str:
        if self.kind == "video":
            return f"video {self.path} ({self.info.width}x{self.info.height}, {float(self.info.fps):g} fps)"
        return f"{self.kind} {self.spec if isinstance(self.spec, (str, Path)) else 'array'}"

    # -- video backgrounds
    def _restart(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = VideoReader(self.path, size=self.size, fit=self.fit)
        self._frames = iter(self._reader)
        self._current = next(self._frames, None)
        if self._current is None:
            raise VideoError(f"background video {self.path} has no frames")
        self._next = next(self._frames, None)
        self._remember(self._current)

    def _remember(self, frame: Frame) -> None:
        """Keep the first pass's frames while they fit in CACHE_BYTES."""
        if self._cache is None or self._duration is not None:
            return
        self._cache_bytes += frame.image.nbytes
        if self._cache_bytes > self.CACHE_BYTES:
            self._cache = None  # too long to keep: decode again on each loop
        else:
            self._cache.append((frame.time, frame.image))

    def _video_frame(self, t: float) -> np.ndarray:
        if self._duration is not None:
            # 1 us of slack: 0.6 % 0.5 is 0.0999..., and should show the frame at 0.1 s.
            t = (t + 1e-6) % self._duration
            if self._cache is not None:  # the whole clip is in memory
                i = int(np.searchsorted(self._cache_times, t, side="right")) - 1
                return to_float(self._cache[max(i, 0)][1])
            if t < self._current.time:
                self._restart()
        while self._next is not None and self._next.time <= t + 1e-6:
            self._current, self._next = self._next, next(self._frames, None)
            self._remember(self._current)
        if self._next is None and self._duration is None:
            # First time at the end: now we know how long the clip is.
            self._duration = self._current.time + float(1 / self.info.fps)
            log.debug("background video is %.2f s long; looping it", self._duration)
            if self._cache is not None:
                self._cache_times = [c[0] for c in self._cache]
                self._reader.close()
                self._reader = None
            if t >= self._duration:
                return self._video_frame(t)
        return to_float(self._current.image)

    def frame_at(self, t: float, image: np.ndarray | None = None) -> np.ndarray:
        """Background at time ``t`` seconds.

        Args:
            image: the foreground frame (``float32`` RGB), needed by ``blur`` specs.
        Returns:
            ``float32`` ``H x W x 3`` in ``[0, 1]`` (possibly a read-only broadcast view).
        """
        if self.kind == "video":
            return self._video_frame(t)
        if self._still is not None:
            return self._still
        if image is None:
            image = np.zeros(self.size + (3,), np.float32)
        return make_background(self.spec, image)

    @property
    def needs_image(self) -> bool:
        return self.kind == "spec" and str(self.spec).strip().startswith("blur")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


# --------------------------------------------------------------------------- audio


class AudioCopier:
    """Copy the first audio stream of ``source`` into an output container.

    Packets are remuxed unchanged when the container takes the codec
    (:data:`REMUX_AUDIO`), else decoded and re-encoded (AAC for MP4/MOV, Opus for
    WebM/Matroska). :meth:`write_until` interleaves audio with the video as it is
    written; :meth:`finish` writes the rest, trimmed to the video's end.

    Args:
        source: the foreground video path.
        container: an open PyAV output container (before any packet is muxed).
        format_name: ``"mp4"``, ``"mov"``, ``"webm"`` or ``"matroska"``.
        start: seconds to subtract from the audio timestamps (the video's first frame time).
    """

    def __init__(self, source: str, container, format_name: str, start: float = 0.0):
        import av

        self._input = av.open(source)
        self._in_stream = self._input.streams.audio[0]
        self._container, self._start = container, start
        codec = self._in_stream.codec_context.name
        self.remux = codec in REMUX_AUDIO.get(format_name, set())
        if self.remux:
            self.stream = container.add_stream_from_template(self._in_stream)
            self.mode = f"remux {codec}"
        else:
            encoder = TRANSCODE_AUDIO.get(format_name, "aac")
            in_ctx = self._in_stream.codec_context
            rate = 48000 if encoder == "libopus" else (in_ctx.sample_rate or 44100)
            layout = "stereo" if (in_ctx.channels or 2) > 1 else "mono"
            self.stream = container.add_stream(encoder, rate=rate)
            self.stream.layout = layout
            fmt = self.stream.codec_context.codec.audio_formats[0].name
            self._resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
            self.mode = f"transcode {codec} -> {encoder}"
        self._packets = self._input.demux(self._in_stream)
        self._pending = None  # the next packet, read but not yet written (past the limit)
        self._done = False

    def _packet_time(self, packet) -> float:
        pts = packet.pts if packet.pts is not None else packet.dts
        return float(pts * packet.time_base) - self._start if pts is not None else 0.0

    def write_until(self, t: float) -> None:
        """Write the audio that starts before ``t`` seconds (output timeline)."""
        while not self._done:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                self._done = True
                break
            if packet.dts is None and packet.pts is None:
                continue  # FFmpeg's flush packet
            if self._packet_time(packet) >= t:
                self._pending = packet
                break
            self._write(packet)

    def _write(self, packet) -> None:
        if self.remux:
            shift = int(round(self._start / packet.time_base))
            if shift:
                if packet.pts is not None:
                    packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
            packet.stream = self.stream
            self._container.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # let the encoder count samples from 0
            for resampled in self._resampler.resample(frame):
                self._container.mux(self.stream.encode(resampled))

    def finish(self, end: float) -> None:
        """Write the remaining audio up to ``end`` seconds, flush the encoder, close the input."""
        try:
            self.write_until(end)
            if not self.remux:
                for resampled in self._resampler.resample(None):
                    self._container.mux(self.stream.encode(resampled))
                self._container.mux(self.stream.encode(None))
        finally:
            self._input.close()

    def abandon(self) -> None:
        self._input.close()


# --------------------------------------------------------------------------- writing


class FrameWriter:
    """Base of the writers: ``write(image, pts)``, ``close()``, context manager.

    ``pts`` counts ``time_base`` units (the writer's, given at construction); ``None``
    means one frame after the previous one.
    """

    frames_written = 0

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass(frozen=True)
class VideoFormat:
    """An encoder and the pixel formats around it."""

    container: str       # PyAV / FFmpeg muxer name
    codec: str
    pix_fmt: str         # what the encoder stores
    input_format: str    # what write() takes: rgb24, rgba or gray
    options: dict = field(default_factory=dict)


def video_format(output_type: str, suffix: str, preset: str = "veryfast", crf: int = 20) -> VideoFormat:
    """Encoder settings for an output type and file suffix (``.mp4``, ``.webm``, ``.mov``...).

    Raises:
        VideoError: a combination no codec here can write (e.g. alpha in MP4).
    """
    suffix = suffix.lower()
    x264 = {"preset": preset, "crf": str(crf)}
    vp9 = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": str(crf + 12), "b": "0"}
    if output_type == "transparent":
        if suffix == ".webm":
            return VideoFormat("webm", "libvpx-vp9", "yuva420p", "rgba", vp9)
        if suffix == ".mov":
            return VideoFormat("mov", "prores_ks", "yuva444p10le", "rgba",
                               {"profile": "4", "alpha_bits": "16", "vendor": "apl0"})
        raise VideoError(f"transparent video needs a .webm (VP9) or .mov (ProRes 4444) file, "
                         f"got {suffix or 'no suffix'}")
    input_format = "gray" if output_type == "alpha" else "rgb24"
    if suffix in (".mp4", ".m4v"):
        return VideoFormat("mp4", "libx264", "yuv420p", input_format, x264)
    if suffix == ".mov":
        return VideoFormat("mov", "libx264", "yuv420p", input_format, x264)
    if suffix == ".mkv":
        return VideoFormat("matroska", "libx264", "yuv420p", input_format, x264)
    if suffix == ".webm":
        return VideoFormat("webm", "libvpx-vp9", "yuv420p", input_format, vp9)
    raise VideoError(f"cannot write {output_type} video to a {suffix or 'suffix-less'} file; "
                     "use .mp4, .mov, .mkv or .webm")


class EncodedVideoWriter(FrameWriter):
    """Encode frames into a video file, with the source's audio when given.

    Args:
        path: output file.
        fmt: a :class:`VideoFormat` (see :func:`video_format`).
        size: ``(height, width)``; even numbers for the 4:2:0 formats.
        fps: frame rate written in the header.
        time_base: unit of the ``pts`` given to :meth:`write` (the reader's).
        audio_source: a video path whose first audio stream is copied, or ``None``.
        audio_start: seconds to subtract from the source audio's timestamps.
    ``write`` takes ``uint8`` ``H x W x 3`` (rgb24), ``H x W x 4`` (rgba) or ``H x W``
    (gray) as ``fmt.input_format`` says.
    """

    def __init__(self, path, fmt: VideoFormat, size: tuple[int, int], fps: Fraction,
                 time_base: Fraction | None = None, audio_source: str | None = None,
                 audio_start: float = 0.0):
        import av

        self.path, self.fmt, self.size = str(path), fmt, size
        h, w = size
        if fmt.pix_fmt.startswith(("yuv420", "yuva420")) and (h % 2 or w % 2):
            raise VideoError(f"{fmt.codec} {fmt.pix_fmt} needs an even width and height, got {w}x{h}")
        self.fps = Fraction(fps)
        self.time_base = Fraction(time_base) if time_base else 1 / self.fps
        self._step = max(int(round(1 / (self.fps * self.time_base))), 1)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(self.path, "w", format=fmt.container)
        try:
            self._stream = self._container.add_stream(fmt.codec, rate=self.fps, options=dict(fmt.options))
            self._stream.width, self._stream.height = w, h
            self._stream.pix_fmt = fmt.pix_fmt
            self._stream.codec_context.time_base = self.time_base
            self._stream.time_base = self.time_base
            self.audio = None
            if audio_source is not None:
                self.audio = AudioCopier(audio_source, self._container, fmt.container, audio_start)
                log.info("audio: %s", self.audio.mode)
        except Exception:
            self._container.close()
            raise
        self.frames_written = 0
        self._last_pts: int | None = None
        self._closed = False

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        import av

        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        expected = 4 if self.fmt.input_format == "rgba" else 3
        if self.fmt.input_format == "gray":
            if image.ndim != 2:
                raise ValueError(f"alpha video frames must be H x W, got {image.shape}")
        elif image.ndim != 3 or image.shape[2] != expected:
            raise ValueError(f"{self.fmt.input_format} frames must be H x W x {expected}, got {image.shape}")
        if image.shape[:2] != self.size:
            raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, the video "
                             f"{self.size[1]}x{self.size[0]}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image, np.uint8),
                                           format=self.fmt.input_format)
        frame.pts, frame.time_base = int(pts), self.time_base
        if self.audio is not None:
            self.audio.write_until(float(pts * self.time_base))
        self._container.mux(self._stream.encode(frame))
        self._last_pts = int(pts)
        self.frames_written += 1

    @property
    def end_time(self) -> float:
        """Seconds from the start to the end of the last frame written."""
        if self._last_pts is None:
            return 0.0
        return float((self._last_pts + self._step) * self.time_base)

    def close(self) -> None:
        """Flush the encoder, write the rest of the audio (trimmed to the video) and the
        trailer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._stream.encode(None))
            if self.audio is not None:
                self.audio.finish(self.end_time)
        finally:
            self._container.close()


class PngSequenceWriter(FrameWriter):
    """Write frames as ``frame_000000.png``... into a folder (RGB, RGBA or grey).

    With ``audio_source`` the source's audio goes beside them as ``audio.mka`` (remuxed).
    """

    def __init__(self, folder, audio_source: str | None = None, time_base: Fraction | None = None,
                 fps: Fraction | None = None, audio_start: float = 0.0, compression: int = 1):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        stale = sorted(self.folder.glob("frame_*.png"))
        if stale:
            raise VideoError(f"{self.folder} already holds {len(stale)} frame_*.png files; "
                             "choose an empty folder")
        self.compression = compression
        self.frames_written = 0
        self.time_base = Fraction(time_base) if time_base else (1 / Fraction(fps) if fps else None)
        self._fps = Fraction(fps) if fps else None
        self._last_pts = None
        self._audio_container = None
        self.audio = None
        if audio_source is not None:
            import av

            self._audio_container = av.open(str(self.folder / "audio.mka"), "w", format="matroska")
            self.audio = AudioCopier(audio_source, self._audio_container, "matroska", audio_start)
            log.info("audio: %s into %s", self.audio.mode, self.folder / "audio.mka")

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        if image.ndim == 3 and image.shape[2] == 4:
            bgr = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
        elif image.ndim == 3:
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        else:
            bgr = image
        path = self.folder / f"frame_{self.frames_written:06d}.png"
        if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_PNG_COMPRESSION, self.compression]):
            raise VideoError(f"could not write {path}")
        self.frames_written += 1
        if pts is not None:
            self._last_pts = pts
        if self.audio is not None and self._last_pts is not None and self.time_base:
            self.audio.write_until(float(self._last_pts * self.time_base))

    def close(self) -> None:
        if self._audio_container is None:
            return
        try:
            end = float(self.frames_written / self._fps) if self._fps else float("inf")
            if self._last_pts is not None and self.time_base and self._fps:
                end = float(self._last_pts * self.time_base + 1 / self._fps)
            self.audio.finish(end)
        finally:
            self._audio_container.close()
            self._audio_container = None


# --------------------------------------------------------------------------- per frame


class TemporalSmoother:
    """Exponential moving average of a per-pixel map where the input barely changed.

    For each pixel the update rate is ``still_rate`` where the (slightly blurred, grey)
    input changed by at most ``low`` grey levels since the previous frame, 1 where it
    changed by ``high`` or more, and linear in between: still regions settle (no
    flicker from the segmenter's and encoder's noise), moving ones follow at once.

    Args:
        still_rate: weight of the new value in still regions, in ``(0, 1]``.
        low, high: change thresholds in grey levels (0-255).
    """

    def __init__(self, still_rate: float = 0.25, low: float = 3.0, high: float = 12.0):
        if not 0 < still_rate <= 1:
            raise ValueError(f"still_rate must lie in (0, 1], got {still_rate}")
        if not 0 <= low < high:
            raise ValueError(f"need 0 <= low < high, got low={low}, high={high}")
        self.still_rate, self.low, self.high = still_rate, low, high
        self._grey: np.ndarray | None = None
        self.rate: np.ndarray | None = None

    def reset(self) -> None:
        self._grey, self.rate = None, None

    def observe(self, image: np.ndarray) -> np.ndarray | None:
        """Take the next input frame (``uint8`` RGB ``H x W x 3``); returns the per-pixel
        update rate (``float32`` ``H x W`` in ``[still_rate, 1]``), ``None`` on the first
        frame or after a size change."""
        grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (5, 5), 0)
        previous, self._grey = self._grey, grey
        if previous is None or previous.shape != grey.shape:
            self.rate = None
            return None
        change = cv2.absdiff(grey, previous).astype(np.float32)
        ramp = np.clip((change - self.low) * (1.0 / (self.high - self.low)), 0.0, 1.0)
        self.rate = self.still_rate + (1.0 - self.still_rate) * ramp
        return self.rate

    def blend(self, previous: np.ndarray | None, current: np.ndarray) -> np.ndarray:
        """``previous + rate * (current - previous)`` with the rate from the last
        :meth:`observe` (``current`` unchanged when there is no rate or no previous)."""
        if previous is None or self.rate is None or previous.shape != current.shape:
            return current
        return cv2.add(previous, cv2.multiply(self.rate, cv2.subtract(current, previous)))


def composite_uint8(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """:func:`core.compositing.composite` with OpenCV's ``blendLinear`` (~10x faster at
    360x240; equal but for rounding, at most 1 grey level).

    Args:
        foreground, background: ``float32`` RGB ``H x W x 3`` in ``[0, 1]``.
        alpha: ``float32`` ``H x W`` in ``[0, 1]``.
    Returns:
        ``uint8`` RGB ``H x W x 3``.
    """
    background = np.ascontiguousarray(background, dtype=np.float32)
    foreground = np.ascontiguousarray(foreground, dtype=np.float32)
    alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    blended = cv2.blendLinear(foreground, background, alpha, 1.0 - alpha)
    return cv2.convertScaleAbs(blended, alpha=255.0)


_MALLOC_TUNED = False


def reuse_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed blocks of up to 32 MB for reuse.

    By default glibc serves each block over 128 kB (one 360x240 float frame is 1 MB) with a
    fresh ``mmap`` and unmaps it on free, so every temporary array of every frame pays
    page faults on first touch. On this project's 2-CPU VM that made the guided-filter
    matter 3-5x slower (blur fusion 16 ms -> 3 ms, the guided filter 12 ms -> 3.6 ms per
    360x240 frame). Process-wide: the heap then keeps its peak size, which for a video job
    is a few frames' worth. A no-op returning ``False`` where there is no glibc.
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


class FrameProcessor:
    """The per-frame function: image -> soft mask -> (smoothing) -> trimap -> alpha -> output.

    Args:
        segmenter, matter: backend instances (``segment(image)``, ``matte(image, trimap)``).
            A matter with ``refine(image, trimap, prior)`` (the guided-filter one) gets the
            (smoothed) soft mask as its prior.
        output_type: :data:`OUTPUT_TYPES`.
        smoothing: temporal smoothing of the soft mask and of alpha (:class:`TemporalSmoother`).
        trimap_params: how masks become trimaps (:data:`VIDEO_TRIMAP` by default).
    """

    def __init__(self, segmenter, matter, output_type: str = "composite", smoothing: bool = True,
                 trimap_params: TrimapParams = VIDEO_TRIMAP, smoother: TemporalSmoother | None = None):
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        self.segmenter, self.matter, self.output_type = segmenter, matter, output_type
        self.trimap_params = trimap_params
        self.smoother = (smoother or TemporalSmoother()) if smoothing else None
        reuse_freed_memory()
        self._mask = None
        self._alpha = None
        self.last_alpha: np.ndarray | None = None

    def matte(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Alpha and foreground of one frame.

        Args:
            image: ``uint8`` RGB ``H x W x 3``.
        Returns:
            ``(image_f, alpha, foreground)``: ``float32`` ``H x W x 3``, ``H x W`` and
            ``H x W x 3`` in ``[0, 1]``. No person: alpha is all 0.
        """
        mask = self.segmenter.segment(image)
        image_f = to_float(image)
        if self.smoother is not None:
            self.smoother.observe(image)
            mask = self.smoother.blend(self._mask, mask)
            self._mask = mask
        trimap = mask_to_trimap(mask, self.trimap_params)
        if not has_person(trimap):
            alpha, foreground = np.zeros(mask.shape, np.float32), image_f
        elif hasattr(self.matter, "refine"):
            alpha, foreground = self.matter.refine(image_f, trimap, mask)
        else:
            alpha, foreground = self.matter.matte(image_f, trimap)
        alpha = alpha.astype(np.float32, copy=False)
        if self.smoother is not None:
            alpha = self.smoother.blend(self._alpha, alpha)
            self._alpha = alpha
        self.last_alpha = alpha
        return image_f, alpha, foreground

    def __call__(self, image: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
        """Output frame for ``image`` (``uint8`` RGB ``H x W x 3``).

        Args:
            background: ``float32`` ``H x W x 3`` in ``[0, 1]``, for ``composite``.
        Returns:
            ``uint8``: composite RGB ``H x W x 3``; transparent / png RGBA ``H x W x 4``
            (straight alpha); alpha ``H x W``.
        """
        _, alpha, foreground = self.matte(image)
        if self.output_type == "composite":
            if background is None:
                raise ValueError("composite output needs a background")
            return composite_uint8(foreground, alpha, background)
        alpha8 = cv2.convertScaleAbs(alpha, alpha=255.0)
        if self.output_type == "alpha":
            return alpha8
        return np.dstack([cv2.convertScaleAbs(foreground, alpha=255.0), alpha8])


def flicker(images, alphas, reference=None, still: float = 2.0) -> dict:
    """How much alpha changes between consecutive frames where the input did not.

    Args:
        images: ``uint8`` RGB frames ``H x W x 3`` (the input).
        alphas: ``float`` ``H x W`` mattes in ``[0, 1]``, one per frame.
        reference: mattes that define the "edge" region (default: ``alphas``); pass the
            unsmoothed run's to compare two runs over the same pixels.
        still: a pixel is still when its grey level (5x5 Gaussian blur) changed by at most
            this much (0-255) since the previous frame.
    Returns:
        ``{"still": mean |alpha_t - alpha_t-1| over still pixels, "edge": the same over
        still pixels where the reference alpha lies strictly within (0.02, 0.98) in either
        frame, "still_pixels": ..., "edge_pixels": ...}``; means in alpha units (0-1).
    """
    reference = alphas if reference is None else reference
    if not (len(images) == len(alphas) == len(reference)):
        raise ValueError("images, alphas and reference need one entry per frame")
    sums = {"still": 0.0, "edge": 0.0, "still_pixels": 0, "edge_pixels": 0}
    previous = None
    for t, image in enumerate(images):
        grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (5, 5), 0)
        if previous is not None:
            quiet = cv2.absdiff(grey, previous) <= still
            soft = [(r > 0.02) & (r < 0.98) for r in (reference[t], reference[t - 1])]
            edge = quiet & (soft[0] | soft[1])
            change = np.abs(alphas[t].astype(np.float32) - alphas[t - 1])
            sums["still"] += float(change[quiet].sum())
            sums["edge"] += float(change[edge].sum())
            sums["still_pixels"] += int(quiet.sum())
            sums["edge_pixels"] += int(edge.sum())
        previous = grey
    return {"still": sums["still"] / max(sums["still_pixels"], 1),
            "edge": sums["edge"] / max(sums["edge_pixels"], 1),
            "still_pixels": sums["still_pixels"], "edge_pixels": sums["edge_pixels"]}


# --------------------------------------------------------------------------- convert


@dataclass
class ConvertResult:
    """What :func:`convert_video` did."""

    output: str
    frames: int
    seconds: float
    size: tuple[int, int]     # (height, width)
    fps: Fraction
    audio: str | None         # how audio was copied, or None
    interrupted: bool = False

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def parse_size(text: str | None, source: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """``"360x240"`` -> ``(240, 360)``; ``"360"`` keeps the source's aspect (needs
    ``source = (height, width)``); ``None`` / ``""`` -> ``None``.

    Raises:
        ValueError: not ``WxH`` with positive integers.
    """
    if not text:
        return None
    text = str(text).lower().strip()
    try:
        if "x" in text:
            w, h = (int(v) for v in text.split("x", 1))
        else:
            w = int(text)
            if source is None:
                raise ValueError("a width alone needs the source size")
            h = int(round(w * source[0] / source[1] / 2)) * 2
    except ValueError:
        raise ValueError(f"size must be WIDTHxHEIGHT such as 360x240, got {text!r}") from None
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise ValueError(f"size must lie within 1..16384 on each side, got {w}x{h}")
    return h, w


def _default_output_path(foreground: str, output_type: str, fmt: str | None) -> str:
    stem = Path(foreground).with_suffix("")
    if output_type == "png":
        return f"{stem}_frames"
    suffix = {"composite": ".mp4", "alpha": ".mp4"}.get(output_type, "." + (fmt or "webm"))
    return f"{stem}_{output_type}{suffix}"


def _resolve_output(output, output_type: str, fmt: str | None) -> Path:
    path = Path(output)
    if output_type == "transparent" and fmt is not None:
        if fmt not in TRANSPARENT_FORMATS:
            raise ValueError(f"format must be one of {TRANSPARENT_FORMATS}, got {fmt!r}")
        if path.suffix.lower() != "." + fmt:
            path = path.with_suffix("." + fmt)
    return path


def convert_video(foreground_path, background="#00ff00", output=None, output_type: str = "composite",
                  format: str | None = None, segmenter="mediapipe", matter="guided-filter",
                  smoothing: bool = True, fit: str = "cover", size=None, max_frames: int | None = None,
                  trimap_params: TrimapParams = VIDEO_TRIMAP, audio: bool = True,
                  progress: bool = True, preset: str = "veryfast", crf: int = 20,
                  segmenter_mode: str = "fast", queue_size: int = 8,
                  on_frame: Callable[[int, np.ndarray], None] | None = None) -> ConvertResult:
    """Cut the people out of ``foreground_path`` and write them over ``background``.

    Args:
        foreground_path: video with people (any format FFmpeg reads).
        background: video file (looped / trimmed to the foreground's length), image file,
            RGB array, colour (``"#00ff00"``, ``"green"``) or ``"blur"`` / ``"blur:STRENGTH"``.
            Only used by ``composite``.
        output: file (``.mp4`` ...) or folder (``png``); default next to the foreground.
        output_type: ``composite`` (H.264 MP4), ``transparent`` (VP9 WebM with alpha or
            ProRes 4444 MOV, see ``format``), ``alpha`` (grey matte, H.264 MP4) or ``png``
            (folder of RGBA PNGs; audio beside them as ``audio.mka``).
        format: ``webm`` or ``mov`` for ``transparent`` (else from the output's suffix).
        segmenter, matter: registry names or backend instances.
        smoothing: temporal smoothing of masks and alpha where the input is still.
        fit: how the background (and the foreground, when ``size`` changes its aspect)
            is fitted: ``cover``, ``contain`` or ``stretch``.
        size: output ``(height, width)`` or ``"WxH"`` / ``"W"``; default: the foreground's
            size (rounded down to even numbers for the 4:2:0 codecs).
        max_frames: stop after this many frames.
        audio: copy the foreground's audio (when it has any).
        progress: show a tqdm bar (frames, fps, ETA) on stderr.
        preset, crf: libx264 speed preset and quality.
        segmenter_mode: passed as ``mode=`` when the segmenter is built by name (MediaPipe:
            ``"fast"``, the selfie model alone, or ``"accurate"``, pose + selfie per person;
            backends without modes ignore it).
        on_frame: called as ``on_frame(index, output_frame)`` after each frame is
            processed (previews, progress in a UI); may raise to stop.
    Returns:
        :class:`ConvertResult`.
    Raises:
        KeyboardInterrupt: after closing the output cleanly (a playable partial file
            holding every frame processed so far) and logging where it is.
        VideoError, ValueError: unreadable input, unknown options.
    """
    from core.matters import create_matter
    from core.segmenters import create_segmenter

    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {FIT_MODES}, got {fit!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    foreground_path = str(foreground_path)
    info = probe(foreground_path)
    if isinstance(size, str) or size is None:
        size = parse_size(size, info.size) or info.size
    size = (int(size[0]), int(size[1]))
    if output_type != "png" and (size[0] % 2 or size[1] % 2):
        even = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        log.info("size %dx%d rounded down to %dx%d for 4:2:0 video", size[1], size[0], even[1], even[0])
        size = even
    if min(size) < 2:
        raise ValueError(f"size {size[1]}x{size[0]} is too small")
    output = _resolve_output(output or _default_output_path(foreground_path, output_type, format),
                             output_type, format)

    fmt = video_format(output_type, output.suffix, preset, crf) if output_type != "png" else None
    if isinstance(segmenter, str):
        segmenter = create_segmenter(segmenter, mode=segmenter_mode)
    if isinstance(matter, str):
        matter = create_matter(matter)
    processor = FrameProcessor(segmenter, matter, output_type, smoothing, trimap_params)
    audio_source = foreground_path if (audio and info.audio is not None) else None

    bg_source = reader = None
    try:
        bg_source = BackgroundSource(background, size, fit) if output_type == "composite" else None
        reader = VideoReader(foreground_path, size=size if size != info.size else None, fit=fit,
                             max_frames=max_frames)
        if fmt is None:
            writer: FrameWriter = PngSequenceWriter(output, audio_source, info.time_base,
                                                    info.fps, info.start_time)
        else:
            writer = EncodedVideoWriter(output, fmt, size, info.fps, info.time_base,
                                        audio_source, info.start_time)
    except BaseException:
        for opened in (reader, bg_source):
            if opened is not None:
                opened.close()
        raise
    total = len(reader) or None
    log.info("%s -> %s (%s, %dx%d, %s fps, %s frames%s); segmenter %s, matter %s, smoothing %s",
             foreground_path, output, output_type, size[1], size[0], f"{float(info.fps):g}",
             total or "?", f", background {bg_source.describe()}" if bg_source else "",
             segmenter.describe(), matter.describe(), "on" if smoothing else "off")

    # Three stages overlap: decode (+ background) | segment + matte + render | encode.
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=queue_size)
    rendered: queue.Queue = queue.Queue(maxsize=queue_size)
    errors: list[BaseException] = []
    end = object()

    def put(q, item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode_stage():
        try:
            for frame in reader:
                if stop.is_set():
                    break
                bg = None
                if bg_source is not None and not bg_source.needs_image:
                    bg = bg_source.frame_at(frame.time)
                if not put(decoded, (frame, bg)):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)
        finally:
            put(decoded, end)  # until the main thread takes it or gives up

    def encode_stage():
        try:
            while True:
                item = rendered.get()
                if item is end:
                    break
                out, pts = item
                writer.write(out, pts)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            stop.set()
            while rendered.get() is not end:  # let the main thread finish its puts
                pass

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=Path(foreground_path).name, dynamic_ncols=True,
                   file=sys.stderr)
    reader_thread = threading.Thread(target=decode_stage, name="video-decode", daemon=True)
    writer_thread = threading.Thread(target=encode_stage, name="video-encode", daemon=True)
    started = time.perf_counter()
    interrupted = False
    reader_thread.start()
    writer_thread.start()
    try:
        while True:
            item = decoded.get()
            if item is end or errors:
                break
            frame, bg = item
            if bg is None and bg_source is not None:
                bg = bg_source.frame_at(frame.time, to_float(frame.image))
            out = processor(frame.image, bg)
            rendered.put((out, frame.pts))
            if bar is not None:
                bar.update(1)
            if on_frame is not None:
                on_frame(frame.index, out)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop.set()
        rendered.put(end)
        writer_thread.join()
        reader_thread.join(timeout=5)
        try:
            writer.close()
        finally:
            reader.close()
            if bg_source is not None:
                bg_source.close()
            if bar is not None:
                bar.close()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    result = ConvertResult(str(output), writer.frames_written, seconds, size, info.fps,
                           getattr(writer.audio, "mode", None) if writer.audio else None,
                           interrupted)
    if interrupted:
        log.warning("interrupted: %s holds the first %d frames (%.1f s) and plays as is",
                    output, result.frames, result.frames / float(info.fps))
        raise KeyboardInterrupt
    if result.frames == 0:
        raise VideoError(f"{foreground_path}: no video frames could be decoded")
    log.info("wrote %d frames to %s in %.1f s (%.1f frames/s)", result.frames, output, seconds,
             result.frames_per_second)
    return result


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    from core.matters import MATTERS
    from core.segmenters import SEGMENTERS

    p = argparse.ArgumentParser(
        prog="python -m core.video",
        description="Composite the people of one video over another video, an image, a colour "
                    "or a blur; or write them with transparency, as an alpha matte or as PNGs.")
    p.add_argument("foreground", help="video with people in it")
    p.add_argument("-b", "--background", default="#00ff00",
                   help="video (looped/trimmed), image, colour (#00ff00, green) or blur[:STRENGTH] "
                        "(default: %(default)s)")
    p.add_argument("-o", "--output", help="output file, or folder for --output-type png "
                                          "(default: next to the foreground)")
    p.add_argument("-t", "--output-type", choices=OUTPUT_TYPES, default="composite")
    p.add_argument("--format", choices=TRANSPARENT_FORMATS,
                   help="container for --output-type transparent (default: from -o, else webm)")
    p.add_argument("--no-smoothing", dest="smoothing", action="store_false",
                   help="no temporal smoothing of masks and alpha")
    p.add_argument("--fit", choices=FIT_MODES, default="cover",
                   help="how the background is fitted to the frame (default: %(default)s)")
    p.add_argument("--segmenter", choices=["auto", *SEGMENTERS], default=DEFAULT_SEGMENTER)
    p.add_argument("--segmenter-mode", default="fast",
                   help="mediapipe: 'fast' (selfie model, a few ms a frame; the default) or "
                        "'accurate' (pose + selfie per person, better on whole bodies, slower)")
    p.add_argument("--matter", choices=["auto", *MATTERS], default=DEFAULT_MATTER,
                   help="matting backend (default: %(default)s, the fast one; closed-form is "
                        "~0.4 s per 360x240 frame)")
    p.add_argument("--size", help="output WIDTHxHEIGHT, e.g. 360x240 (default: the foreground's)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--no-audio", dest="audio", action="store_false", help="drop the audio")
    p.add_argument("--crf", type=int, default=20, help="H.264 quality, lower is better (default 20)")
    p.add_argument("--preset", default="veryfast", help="libx264 preset (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings only")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        result = convert_video(
            args.foreground, background=args.background, output=args.output,
            output_type=args.output_type, format=args.format, segmenter=args.segmenter,
            matter=args.matter, smoothing=args.smoothing, fit=args.fit, size=args.size,
            max_frames=args.max_frames, audio=args.audio, progress=not args.quiet,
            preset=args.preset, crf=args.crf, segmenter_mode=args.segmenter_mode)
    except KeyboardInterrupt:
        return 130
    except (VideoError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    print(f"{result.output}: {result.frames} frames, {result.size[1]}x{result.size[0]}, "
          f"{float(result.fps):g} fps, audio: {result.audio or 'none'}; "
          f"{result.frames_per_second:.1f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
