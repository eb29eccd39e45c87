"""Reading: :class:`VideoReader` (PyAV) yields :class:`Frame` s; :func:`probe` gives a
file's :class:`VideoInfo` (and :class:`AudioInfo`); :class:`BackgroundSource` gives the
background for each output frame (a video looped or trimmed, an image, a colour, a blur).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core.compositing import fit_image, fitted_size, make_background
from core.images import IMAGE_FORMATS, read_image_file, to_float
from core.video.errors import VideoError

# One logger for the whole package, named as before the split (``core.video``).
log = logging.getLogger("core.video")

# Still images a background may be: decoded by core.images (ICC profiles, EXIF), not FFmpeg.
IMAGE_SUFFIXES = {"." + f for f in IMAGE_FORMATS} | {".tif", ".tiff", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg",
                  ".ts", ".wmv", ".flv", ".ogv"}


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
    # How stored frames are turned upright (the display matrix, see :func:`orientation`):
    # ``None`` or an :func:`orient` operation. ``width`` and ``height`` are the upright size.
    orientation: str | None = None

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


# Turning stored frames upright: FFmpeg's own choice of filter for each display matrix
# (fftools/ffmpeg_filter.c, ``autorotate``), done here with OpenCV on the RGB array.
_ORIENT = {
    "clock": lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    "cclock": lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
    "transpose": cv2.transpose,                                  # FFmpeg's cclock_flip
    "antitranspose": lambda a: cv2.rotate(cv2.transpose(a), cv2.ROTATE_180),  # clock_flip
    "rotate180": lambda a: cv2.rotate(a, cv2.ROTATE_180),
    "hflip": lambda a: cv2.flip(a, 1),
    "vflip": lambda a: cv2.flip(a, 0),
}
SWAPS_SIDES = {"clock", "cclock", "transpose", "antitranspose"}


def orient(image: np.ndarray, orientation: str | None) -> np.ndarray:
    """A stored frame (``H x W`` or ``H x W x C``) turned upright by ``orientation``
    (a key of ``_ORIENT``, from :func:`orientation`); ``None`` returns ``image``."""
    if orientation is None:
        return image
    return np.ascontiguousarray(_ORIENT[orientation](image))


def orientation(matrix=None, rotate_tag: str | None = None) -> str | None:
    """What turns a stored frame upright, as FFmpeg's ``autorotate`` decides it.

    Args:
        matrix: the display matrix (9 ``int32``, FFmpeg's ``AV_FRAME_DATA_DISPLAYMATRIX``:
            16.16 fixed point, row-major), or ``None``.
        rotate_tag: the older ``rotate`` stream tag (clockwise degrees, e.g. ``"90"``),
            used when there is no matrix (FFmpeg before 6 exported it instead).
    Returns:
        ``None`` (upright as stored) or one of ``clock``, ``cclock``, ``rotate180``,
        ``transpose``, ``antitranspose``, ``hflip``, ``vflip`` (rotations by 90, 180 and
        270 degrees, either sign, and their mirror images). Other angles are logged and
        rounded to the nearest quarter turn.
    """
    if matrix is None:
        if not rotate_tag:
            return None
        try:
            theta = float(rotate_tag)
        except ValueError:
            log.warning("ignoring a video rotation tag %r", rotate_tag)
            return None
        m = None
    else:
        m = [int(v) for v in matrix]
        scale0, scale1 = np.hypot(m[0], m[3]), np.hypot(m[1], m[4])
        if scale0 == 0 or scale1 == 0:
            return None
        # av_display_rotation_get() is counter-clockwise; FFmpeg negates it (clockwise).
        theta = -round(float(-np.degrees(np.arctan2(m[1] / scale1, m[0] / scale0))))
    theta -= 360 * np.floor(theta / 360 + 0.9 / 360)  # into [0, 360)
    quarter = int(round(theta / 90)) % 4  # noqa: RUF046 (int() for numpy scalars)
    if abs(theta - 90 * round(theta / 90)) > 2:
        log.warning("video rotation of %.0f degrees rounded to %d", theta, quarter * 90)
    if quarter == 1:
        return "transpose" if m is not None and m[3] > 0 else "clock"
    if quarter == 2:
        if m is None:
            return "rotate180"
        flips = (m[0] < 0, m[4] < 0)
        return {(True, True): "rotate180", (True, False): "hflip", (False, True): "vflip"}.get(flips)
    if quarter == 3:
        return "antitranspose" if m is not None and m[3] < 0 else "cclock"
    return "vflip" if m is not None and m[4] < 0 else None


def _frame_orientation(av_frame, stream) -> str | None:
    """The orientation a decoded frame's display matrix (or the stream's tag) asks for."""
    for side in getattr(av_frame, "side_data", ()):
        kind = getattr(side, "type", None)
        if str(getattr(kind, "name", kind)).upper().endswith("DISPLAYMATRIX"):
            return orientation(np.frombuffer(bytes(side), dtype=np.int32, count=9))
    return orientation(None, stream.metadata.get("rotate"))


def _first_frame_orientation(container, stream) -> str | None:
    """Decode the first frame for its display matrix: FFmpeg 6+ puts the container's
    rotation there (PyAV exposes no stream-level side data to read)."""
    import av

    try:
        for av_frame in container.decode(stream):
            return _frame_orientation(av_frame, stream)
    except av.error.FFmpegError:
        pass  # the reader reports undecodable video
    return orientation(None, stream.metadata.get("rotate"))


# Demuxers a video may be read with: real containers only. FFmpeg otherwise also takes
# playlists and scripts (HLS .m3u8, concat lists...) that open other files named inside
# them: an uploaded playlist could make a service read its own disk.
INPUT_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,flv,ogg,asf,gif,"
                 "mxf,nut,dv,h264,hevc,m4v,wav,mp3,aac,flac")


def open_input(path):
    """``av.open`` for reading a user's video (or its audio) with the demuxers of
    :data:`INPUT_FORMATS` only.

    Raises:
        av.error.FFmpegError: not a file FFmpeg reads as one of those.
    """
    import av

    return av.open(str(path), options={"format_whitelist": INPUT_FORMATS})


def probe(path) -> VideoInfo:
    """Read a video's size (upright, after its display rotation), frame rate, length and
    audio facts, decoding at most its first frame (for the rotation).

    Raises:
        VideoError: missing file, not a video, or no video stream.
    """
    import av

    path = str(path)
    if not os.path.isfile(path):
        raise VideoError(f"no such video file: {path}")
    try:
        container = open_input(path)
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
        frames = int(round(duration * fps))  # noqa: RUF046 (int() for numpy scalars)
    audio = None
    if container.streams.audio:
        a = container.streams.audio[0]
        actx = a.codec_context
        audio = AudioInfo(codec=actx.name, sample_rate=int(actx.sample_rate or 0),
                          channels=int(actx.channels or 0),
                          layout=getattr(actx.layout, "name", "") or "",
                          time_base=Fraction(a.time_base) if a.time_base else Fraction(1, 1))
    orient_as = _first_frame_orientation(container, stream)
    width, height = int(ctx.width), int(ctx.height)
    if orient_as in SWAPS_SIDES:
        width, height = height, width
    return VideoInfo(path=path, width=width, height=height, fps=fps,
                     frame_count=frames, duration=duration,
                     time_base=Fraction(stream.time_base or Fraction(1, 1000)),
                     codec=ctx.name, audio=audio, start_pts=int(stream.start_time or 0),
                     orientation=orient_as)


class VideoReader:
    """Decode a video file frame by frame (PyAV, with FFmpeg's decoding threads), upright:
    a display rotation (phone clips: 90, 180 or 270 degrees, either sign, or mirrored) is
    applied to every frame, so frames have the size :func:`probe` reports.

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
        fitted_size((1, 1), (1, 1), fit)  # validates ``fit`` before anything is opened
        self.info = probe(path)
        self.size, self.fit, self.max_frames = size, fit, max_frames
        self._container = open_input(path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"

    def __len__(self) -> int:
        n = self.info.frame_count
        return min(n, self.max_frames) if self.max_frames is not None else n

    def __iter__(self) -> Iterator[Frame]:
        tb = self.info.time_base
        step = max(int(round(1 / (self.info.fps * tb))), 1)  # one frame, in time_base units  # noqa: RUF046 (int() for numpy scalars)
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
        """The frame upright, as ``uint8`` RGB at ``self.size``: FFmpeg's swscale converts
        and scales in one pass (area averaging, ~2x faster than converting then
        ``cv2.resize``), OpenCV turns it upright, then
        :func:`core.compositing.fit_image` crops or pads to the exact size."""
        turn = self.info.orientation
        if self.size is None:
            return orient(av_frame.to_ndarray(format="rgb24"), turn)
        h, w = self.size
        ih, iw = av_frame.height, av_frame.width
        if turn in SWAPS_SIDES:  # scale in stored orientation, to the upright target
            h, w = w, h
        nh, nw = fitted_size((ih, iw), (h, w), self.fit)
        if (nw, nh) != (iw, ih):
            av_frame = av_frame.reformat(width=nw, height=nh, format="rgb24", interpolation="AREA")
        upright = orient(av_frame.to_ndarray(format="rgb24"), turn)
        return np.ascontiguousarray(fit_image(upright, self.size, self.fit))

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
            if Path(path).suffix.lower() in IMAGE_SUFFIXES:
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
        elif (isinstance(spec, (str, Path))
              and Path(str(spec)).suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES):
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
