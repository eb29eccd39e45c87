"""A whole video through the engine's one pipeline: :func:`convert_video`.

It is three small parts:

1. :class:`VideoOptions` and :func:`plan`: what to write (output type, size, container,
   path), checked before anything is opened;
2. :func:`frame_steps`: one frame through :class:`core.pipeline.Pipeline` (with the
   video's :class:`~core.temporal.VideoState`) and :func:`core.pipeline.render`, in two
   steps (segment; matte and render);
3. :func:`core.video.stages.run_stages`: read | segment | matte + render | write
   overlapping, a failure in any stage stopping the others and surfacing, Ctrl-C leaving
   a playable file.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ParameterError
from core.people import EVERYONE, Selection, parse_selection
from core.pipeline import Pipeline, render
from core.runtime import reuse_freed_memory
from core.temporal import VideoState
from core.video.errors import VideoError
from core.video.reader import BackgroundSource, Frame, VideoInfo, VideoReader, probe
from core.video.stages import run_stages
from core.video.writers import (
    EncodedVideoWriter,
    FrameWriter,
    PngSequenceWriter,
    VideoFormat,
    video_format,
)

log = logging.getLogger("core.video")

OUTPUT_TYPES = ("composite", "transparent", "alpha", "png")
TRANSPARENT_FORMATS = ("webm", "mov")
DEFAULT_SEGMENTER = "mediapipe"
DEFAULT_MATTER = "guided-filter"
# MediaPipe for video: ``tracking`` follows people from frame to frame
# (core/segmenters/tracking.py, the default); ``fast`` and ``accurate`` are the photo
# segmenter's modes, run anew on every frame.
SEGMENTER_MODES = ("tracking", "fast", "accurate")
DEFAULT_SEGMENTER_MODE = "tracking"
# A much narrower band than the photo default (10 + 10 iterations of a 5 px kernel, ~40 px
# at any size): the person is where the mask is >= 0.5, and only a band of one or two 3x3
# steps either side of that outline (scaled with the people's size: 1 step at 360x240
# and 854x480 for a whole body, 2 at 720p or for a close-up) is left to the matter. The
# masks' soft edge is the segmenter's doubt, a few pixels wide, not partial coverage: a
# wide band shows it as a see-through halo (6-8 % of a 854x480 frame semi-transparent on
# dance-twirl with the band of 0.06; 0.9 % with this one, at the same IoU;
# benchmarks/bench_video_vs_rvm.py, docs/video.md).
VIDEO_TRIMAP = {"method": "binary", "kernel_size": 3, "band_scale": 0.02}
# The guided filter at half resolution inside (He's "fast guided filter"): as good on
# people at video sizes, and 2-3x cheaper.
VIDEO_MATTER_OPTIONS = {"guided-filter": {"subsample": 0.5}}


@dataclass(frozen=True)
class VideoOptions:
    """How a video is converted: everything but the files and the models.

    Attributes:
        output_type: :data:`OUTPUT_TYPES`: ``composite`` (H.264 MP4), ``transparent`` (VP9
            WebM with alpha or ProRes 4444 MOV, see ``format``), ``alpha`` (grey matte,
            H.264 MP4) or ``png`` (folder of RGBA PNGs; audio beside them as ``audio.mka``).
        format: ``webm`` or ``mov`` for ``transparent`` (else from the output's suffix).
        fit: how the background (and the foreground, when ``size`` changes its aspect) is
            fitted: ``cover``, ``contain`` or ``stretch``.
        size: output ``(height, width)`` or ``"WxH"`` / ``"W"``; default: the foreground's
            size (rounded down to even numbers for the 4:2:0 codecs).
        max_frames: stop after this many frames.
        audio: copy the foreground's audio (when it has any).
        smoothing: temporal smoothing of masks and alpha where the input is still.
        preset, crf: libx264 speed preset and quality.
    Raises:
        ParameterError: a value out of range (the message names it).
    """

    output_type: str = "composite"
    format: str | None = None
    fit: str = "cover"
    size: Any = None
    max_frames: int | None = None
    audio: bool = True
    smoothing: bool = True
    preset: str = "veryfast"
    crf: int = 20

    def __post_init__(self):
        from core.compositing import FIT_MODES

        if self.output_type not in OUTPUT_TYPES:
            raise ParameterError(f"output type must be one of {list(OUTPUT_TYPES)}, "
                                 f"got {self.output_type!r}")
        if self.fit not in FIT_MODES:
            raise ParameterError(f"fit must be one of {list(FIT_MODES)}, got {self.fit!r}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ParameterError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.format is not None and self.format not in TRANSPARENT_FORMATS:
            raise ParameterError(f"format must be one of {list(TRANSPARENT_FORMATS)}, "
                                 f"got {self.format!r}")
        if not 0 <= int(self.crf) <= 51:
            raise ParameterError(f"crf must lie in [0, 51], got {self.crf}")


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
        ParameterError: not ``WxH`` with positive integers.
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
        raise ParameterError(f"size must be WIDTHxHEIGHT such as 360x240, got {text!r}") from None
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise ParameterError(f"size must lie within 1..16384 on each side, got {w}x{h}")
    return h, w


@dataclass(frozen=True)
class Plan:
    """What :func:`plan` decided: the output's path, size and encoder (``None`` for PNGs)."""

    info: VideoInfo
    output: Path
    size: tuple[int, int]
    encoder: VideoFormat | None


def plan(foreground: str, output, options: VideoOptions) -> Plan:
    """Probe ``foreground`` and settle the output's size, path and encoder.

    Raises:
        VideoError: unreadable foreground or an output the codecs cannot write;
        ParameterError: a bad size.
    """
    info = probe(foreground)
    size = options.size
    if isinstance(size, str) or size is None:
        size = parse_size(size, info.size) or info.size
    size = (int(size[0]), int(size[1]))
    if options.output_type != "png" and (size[0] % 2 or size[1] % 2):
        even = (size[0] - size[0] % 2, size[1] - size[1] % 2)
        log.info("size %dx%d rounded down to %dx%d for 4:2:0 video", size[1], size[0], even[1], even[0])
        size = even
    if min(size) < 2:
        raise ParameterError(f"size {size[1]}x{size[0]} is too small")
    path = Path(output or _default_output_path(foreground, options.output_type, options.format))
    if options.output_type == "transparent" and options.format is not None:
        if path.suffix.lower() != "." + options.format:
            path = path.with_suffix("." + options.format)
    encoder = None
    if options.output_type != "png":
        encoder = video_format(options.output_type, path.suffix, options.preset, options.crf)
    return Plan(info, path, size, encoder)


def _default_output_path(foreground: str, output_type: str, fmt: str | None) -> str:
    stem = Path(foreground).with_suffix("")
    if output_type == "png":
        return f"{stem}_frames"
    suffix = {"composite": ".mp4", "alpha": ".mp4"}.get(output_type, "." + (fmt or "webm"))
    return f"{stem}_{output_type}{suffix}"


def video_pipeline(segmenter="mediapipe", matter="guided-filter",
                   segmenter_mode: str = DEFAULT_SEGMENTER_MODE,
                   trimap: Mapping[str, Any] | None = None) -> Pipeline:
    """The in-process pipeline the video command uses by default: MediaPipe following
    people from frame to frame (``tracking``) + guided-filter matting
    (:data:`VIDEO_MATTER_OPTIONS`), and :data:`VIDEO_TRIMAP`'s band.

    Args:
        segmenter, matter: registry names or backend instances.
        segmenter_mode: for MediaPipe, one of :data:`SEGMENTER_MODES`: ``tracking`` (the
            ``mediapipe-tracking`` segmenter), or the photo segmenter's ``fast`` / ``accurate``
            mode on every frame (ignored for other segmenters).
        trimap: trimap fields (default :data:`VIDEO_TRIMAP`).
    Raises:
        ParameterError: an unknown ``segmenter_mode``.
    """
    if segmenter_mode not in SEGMENTER_MODES:
        raise ParameterError(f"segmenter mode must be one of {list(SEGMENTER_MODES)}, "
                             f"got {segmenter_mode!r}")
    options = None
    if segmenter == "mediapipe" and segmenter_mode == "tracking":
        segmenter = "mediapipe-tracking"
    elif isinstance(segmenter, str):
        options = {"mediapipe": {"mode": segmenter_mode}}
    return Pipeline.in_process(segmenter, matter,
                               trimap=VIDEO_TRIMAP if trimap is None else trimap,
                               segmenter_options=options, matter_options=VIDEO_MATTER_OPTIONS)


def frame_steps(pipeline: Pipeline, state: VideoState | None, output_type: str,
                background: BackgroundSource | None, people: Selection = EVERYONE
                ) -> tuple[Callable[[tuple], tuple], Callable[[tuple], tuple]]:
    """The per-frame work in two steps that can overlap (one frame segmented while the one
    before is matted, rendered and encoded): :meth:`Pipeline.segment
    <core.pipeline.Pipeline.segment>`, then :meth:`Pipeline.matte
    <core.pipeline.Pipeline.matte>` and :func:`~core.pipeline.render`. Together they are
    :meth:`Pipeline.run <core.pipeline.Pipeline.run>`; see :func:`frame_function`.
    ``people`` picks whom to keep in every frame (:mod:`core.people`; ``index:`` counts
    from the largest in each frame).

    Returns:
        ``(segment, finish)``: ``segment((frame, background or None))`` returns what
        ``finish`` takes, and ``finish`` returns ``(output image, pts)``.
    """
    def segment(item: tuple[Frame, np.ndarray | None]) -> tuple:
        frame, bg = item
        return frame, bg, pipeline.segment(frame.image, state=state, people=people)

    def finish(item: tuple) -> tuple[np.ndarray, int]:
        frame, bg, segmentation = item
        result = pipeline.matte(frame.image, segmentation, state=state)
        if output_type == "composite":
            if bg is None:
                bg = background.frame_at(frame.time, result.image)
            out = render(result, "composite", bg, unchanged_without_people=False)
        elif output_type == "alpha":
            out = render(result, "alpha")
        else:
            out = render(result, "cutout")
        return out, frame.pts
    return segment, finish


def frame_function(pipeline: Pipeline, state: VideoState | None, output_type: str,
                   background: BackgroundSource | None,
                   people: Selection = EVERYONE) -> Callable[[tuple], tuple]:
    """The per-frame step: ``(frame, background or None) -> (output image, pts)``, the two
    :func:`frame_steps` one after the other.

    The output is ``uint8``: composite RGB ``H x W x 3``; transparent / png RGBA
    ``H x W x 4`` (straight alpha); alpha ``H x W``. A frame with nobody in it shows the
    background (``composite``) or is fully transparent. ``people`` picks whom to keep in
    every frame (:mod:`core.people`; ``index:`` counts from the largest in each frame).
    """
    segment, finish = frame_steps(pipeline, state, output_type, background, people)
    return lambda item: finish(segment(item))


def _read_with_background(reader: VideoReader, background: BackgroundSource | None):
    """Frames with their background decoded beside them (in the reading thread), except
    for a blur, which needs the frame itself (done in the processing step)."""
    for frame in reader:
        bg = None
        if background is not None and not background.needs_image:
            bg = background.frame_at(frame.time)
        yield frame, bg


def _close_quietly(*resources) -> None:
    for resource in resources:
        if resource is None:
            continue
        try:
            resource.close()
        except Exception:  # noqa: BLE001 - already failing; log and go on closing
            log.warning("closing %s failed", type(resource).__name__, exc_info=True)


def convert_video(foreground_path, background="#00ff00", output=None, *,
                  pipeline: Pipeline | None = None, segmenter="mediapipe",
                  matter="guided-filter", segmenter_mode: str = DEFAULT_SEGMENTER_MODE,
                  trimap: Mapping[str, Any] | None = None, people="all",
                  progress: bool = True,
                  queue_size: int = 8,
                  on_frame: Callable[[int, np.ndarray], None] | None = None,
                  **options) -> ConvertResult:
    """Cut the people out of ``foreground_path`` and write them over ``background``.

    Args:
        foreground_path: video with people (any format FFmpeg reads).
        background: video file (looped / trimmed to the foreground's length), image file,
            RGB array, colour (``"#00ff00"``, ``"green"``) or ``"blur"`` / ``"blur:STRENGTH"``.
            Only used by ``composite``.
        output: file (``.mp4`` ...) or folder (``png``); default next to the foreground.
        pipeline: the :class:`~core.pipeline.Pipeline` to use; default
            :func:`video_pipeline` (``segmenter``, ``matter``, ``segmenter_mode``, ``trimap``).
        people: which people to keep (``people=`` forms, :mod:`core.people`).
        progress: show a tqdm bar (frames, fps, ETA) on stderr.
        on_frame: called as ``on_frame(index, output_frame)`` after each frame is
            processed (previews, progress in a UI); may raise to stop.
        options: :class:`VideoOptions` fields (``output_type``, ``format``, ``fit``,
            ``size``, ``max_frames``, ``audio``, ``smoothing``, ``preset``, ``crf``).
    Returns:
        :class:`ConvertResult`.
    Raises:
        KeyboardInterrupt: after closing the output cleanly (a playable partial file
            holding every frame processed so far) and logging where it is.
        VideoError, ParameterError: unreadable input, bad options.
        Any error of a stage (reading, a backend, writing), after the others stopped.
    """
    opts = VideoOptions(**options)
    selection = parse_selection(people) if isinstance(people, str) else people
    foreground_path = str(foreground_path)
    target = plan(foreground_path, output, opts)
    if pipeline is None:
        pipeline = video_pipeline(segmenter, matter, segmenter_mode, trimap)
    state = pipeline.new_video(opts.smoothing)
    reuse_freed_memory()
    audio_source = foreground_path if (opts.audio and target.info.audio is not None) else None
    info = target.info
    bg_source = reader = None
    try:
        if opts.output_type == "composite":
            bg_source = BackgroundSource(background, target.size, opts.fit)
        reader = VideoReader(foreground_path, size=target.size if target.size != info.size else None,
                             fit=opts.fit, max_frames=opts.max_frames)
        if target.encoder is None:
            writer: FrameWriter = PngSequenceWriter(target.output, audio_source, info.time_base,
                                                    info.fps, info.start_time)
        else:
            writer = EncodedVideoWriter(target.output, target.encoder, target.size, info.fps,
                                        info.time_base, audio_source, info.start_time)
    except BaseException:
        for opened in (reader, bg_source):
            if opened is not None:
                opened.close()
        raise
    total = len(reader) or None
    log.info("%s -> %s (%s, %dx%d, %s fps, %s frames%s); %s, smoothing %s", foreground_path,
             target.output, opts.output_type, target.size[1], target.size[0],
             f"{float(info.fps):g}", total or "?",
             f", background {bg_source.describe()}" if bg_source else "", pipeline.describe(),
             "on" if opts.smoothing else "off")

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=Path(foreground_path).name,
                   dynamic_ncols=True, file=sys.stderr)

    def processed(item, output_frame) -> None:
        if bar is not None:
            bar.update(1)
        if on_frame is not None:
            on_frame(item[0].index, output_frame[0])

    started = time.perf_counter()
    try:
        stages = run_stages(_read_with_background(reader, bg_source),
                            frame_steps(pipeline, state, opts.output_type, bg_source,
                                        selection),
                            lambda out: writer.write(*out), queue_size=queue_size,
                            on_processed=processed)
    except BaseException:
        _close_quietly(writer, reader, bg_source, bar)  # the stage's error is the one to see
        raise
    try:
        writer.close()
    finally:
        _close_quietly(reader, bg_source, bar)
    seconds = time.perf_counter() - started
    result = ConvertResult(str(target.output), writer.frames_written, seconds, target.size,
                           info.fps, getattr(writer.audio, "mode", None) if writer.audio else None,
                           stages.interrupted)
    if stages.interrupted:
        log.warning("interrupted: %s holds the first %d frames (%.1f s) and plays as is",
                    target.output, result.frames, result.frames / float(info.fps))
        raise KeyboardInterrupt
    if result.frames == 0:
        raise VideoError(f"{foreground_path}: no video frames could be decoded")
    log.info("wrote %d frames to %s in %.1f s (%.1f frames/s)", result.frames, target.output,
             seconds, result.frames_per_second)
    return result
