"""The per-frame function (:class:`FrameProcessor`: segment -> temporal smoothing ->
trimap -> matte -> render) and :func:`convert_video`, which runs reader -> processor ->
writer with a thread per stage, a tqdm progress bar and a clean close on Ctrl-C.
"""
from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core.compositing import FIT_MODES
from core.images import to_float
from core.runtime import reuse_freed_memory
from core.trimap import TrimapParams, has_person, mask_to_trimap
from core.video.errors import VideoError
from core.video.reader import BackgroundSource, VideoReader, probe
from core.video.smoothing import TemporalSmoother
from core.video.writers import (
    EncodedVideoWriter,
    FrameWriter,
    PngSequenceWriter,
    video_format,
)

# One logger for the whole package, named as before the split (``core.video``).
log = logging.getLogger("core.video")

OUTPUT_TYPES = ("composite", "transparent", "alpha", "png")
TRANSPARENT_FORMATS = ("webm", "mov")
DEFAULT_SEGMENTER = "mediapipe"
DEFAULT_MATTER = "guided-filter"
# The original soft trimap with a band scaled with the person, ~2 iterations at 360x240,
# ~4 at 720p (the photo default is now the decided trimap, not yet measured for flicker
# on video: the video path keeps what docs/video.md measured).
VIDEO_TRIMAP = TrimapParams.soft(band_scale=0.06)


# --------------------------------------------------------------------------- per frame


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


class FrameProcessor:
    """The per-frame function: image -> soft mask -> (smoothing) -> trimap -> alpha -> output.

    Args:
        segmenter, matter: backend instances (``segment(image)``,
            ``matte(image, trimap, prior)``); the (smoothed) soft mask is the prior.
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
        else:
            alpha, foreground = self.matter.matte(image_f, trimap, mask)
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
            h = int(round(w * source[0] / source[1] / 2)) * 2  # noqa: RUF046 (int() for numpy scalars)
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
