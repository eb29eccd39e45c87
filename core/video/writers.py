"""Writing: :class:`EncodedVideoWriter` (MP4/H.264 composites, WebM/VP9 or MOV/ProRes 4444
with alpha, grey alpha mattes; settings from :func:`video_format`), :class:`PngSequenceWriter`
(a folder of PNGs) and :class:`AudioCopier`, which carries the foreground's sound over.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core.video.errors import VideoError

# One logger for the whole package, named as before the split (``core.video``).
log = logging.getLogger("core.video")

# Audio codecs each container takes as they are (remux); anything else is transcoded.
REMUX_AUDIO = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "matroska": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "vorbis", "flac",
                 "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "webm": {"opus", "vorbis"},
}
TRANSCODE_AUDIO = {"mp4": "aac", "mov": "aac", "matroska": "libopus", "webm": "libopus"}


# --------------------------------------------------------------------------- audio


class AudioCopier:
    """Copy the first audio stream of ``source`` into an output container, in sync.

    Packets are remuxed unchanged when the container takes the codec
    (:data:`REMUX_AUDIO`), else decoded and re-encoded (AAC for MP4/MOV, Opus for
    WebM/Matroska). :meth:`write_until` interleaves audio with the video as it is
    written; :meth:`finish` writes the rest, trimmed to the video's end.

    Timing: the output timeline starts at the video's first frame (``start`` seconds on
    the source's clock). Audio keeps its offset from the video on both paths: sound that
    starts later than the picture starts as late in the output (the container's
    timestamps / edit list say so); sound that starts earlier is cut at the first frame
    (sample-exact when transcoding or remuxing PCM; other remuxed codecs keep the one
    packet that straddles it, at its negative time, where the container has a video
    stream to anchor the timeline, and drop it in an audio-only file such as
    ``audio.mka``, whose timeline would otherwise move). Sync holds to the sample on the
    transcode path and to the packet's timestamp when remuxing.

    Args:
        source: the foreground video path.
        container: an open PyAV output container (before any packet is muxed).
        format_name: ``"mp4"``, ``"mov"``, ``"webm"`` or ``"matroska"``.
        start: seconds on the source's clock where the output timeline starts (the
            video's first frame).
        audio_only: the container holds no video stream (the PNG sequence's
            ``audio.mka``): nothing may be written before time 0.
    """

    def __init__(self, source: str, container, format_name: str, start: float = 0.0,
                 audio_only: bool = False):
        import av

        from core.video.reader import open_input

        self._input = open_input(source)
        self._in_stream = self._input.streams.audio[0]
        self._container, self._start, self._audio_only = container, start, audio_only
        in_ctx = self._in_stream.codec_context
        codec = in_ctx.name
        self.remux = codec in REMUX_AUDIO.get(format_name, set())
        self._pcm = codec.startswith("pcm_")
        if self.remux:
            self.stream = container.add_stream_from_template(self._in_stream)
            self.mode = f"remux {codec}"
        else:
            encoder = TRANSCODE_AUDIO.get(format_name, "aac")
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
        self._next_sample: int | None = None  # transcode: where a frame without pts goes

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
            self._remux(packet)
            return
        for frame in packet.decode():
            frame = self._place(frame)
            if frame is not None:
                for resampled in self._resampler.resample(frame):
                    self._container.mux(self.stream.encode(resampled))

    def _remux(self, packet) -> None:
        begin = self._packet_time(packet)
        if begin < 0:
            length = float(packet.duration * packet.time_base) if packet.duration else 0.0
            if begin + length <= 0:
                return  # wholly before the first frame
            if self._pcm:
                packet = self._cut_pcm(packet, -begin)
            elif self._audio_only:
                return  # would shift the whole file's timeline: lose < 1 packet instead
        shift = int(round(self._start / packet.time_base))  # noqa: RUF046 (int() for numpy scalars)
        if shift:
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
        packet.stream = self.stream
        self._container.mux(packet)

    def _cut_pcm(self, packet, seconds: float):
        """A PCM packet without its first ``seconds`` (whole samples, all channels)."""
        import av

        ctx = self._in_stream.codec_context
        rate = ctx.sample_rate or 1
        frame_bytes = max(packet.size // max(int(packet.duration * packet.time_base * rate), 1), 1)
        skip = int(round(seconds * rate))  # noqa: RUF046 (int() for numpy scalars)
        cut = av.Packet(bytes(packet)[skip * frame_bytes:])
        cut.time_base = packet.time_base
        cut.pts = cut.dts = packet.pts + int(round(Fraction(skip, rate) / packet.time_base))  # noqa: RUF046
        cut.duration = max(packet.duration - (cut.pts - packet.pts), 0)
        return cut

    def _place(self, frame):
        """``frame`` timed on the output timeline (``pts`` in samples, time base
        1 / its rate), its samples before time 0 cut off; ``None`` when nothing is left."""
        import av

        rate = frame.sample_rate
        if frame.pts is not None and frame.time_base:
            first = int(round((float(frame.pts * frame.time_base) - self._start) * rate))  # noqa: RUF046
        else:  # no timestamp: straight after the previous frame
            first = self._next_sample if self._next_sample is not None else 0
        self._next_sample = first + frame.samples
        if first + frame.samples <= 0:
            return None
        if first < 0:
            data = frame.to_ndarray()
            channels = len(frame.layout.channels)
            skip = -first if frame.format.is_planar else -first * channels
            trimmed = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, skip:]),
                                                 format=frame.format.name, layout=frame.layout.name)
            trimmed.sample_rate = rate
            frame, first = trimmed, 0
        frame.pts, frame.time_base = first, Fraction(1, rate)
        return frame

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
        self._step = max(int(round(1 / (self.fps * self.time_base))), 1)  # noqa: RUF046 (int() for numpy scalars)
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
            self.audio = AudioCopier(audio_source, self._audio_container, "matroska", audio_start,
                                     audio_only=True)
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
            raise OSError(f"could not write {path}")
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
