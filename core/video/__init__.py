"""Video: people from one video composited over another, with sound.

Reader -> per-frame function -> writer, as in RobustVideoMatting's ``inference_utils`` /
``convert_video``, with the engine's one :class:`core.pipeline.Pipeline` as the per-frame
function (and a :class:`core.temporal.VideoState` carried from frame to frame):

- :mod:`core.video.reader`: :class:`VideoReader` decodes a file with PyAV and yields
  :class:`Frame` s (``uint8`` RGB, optionally resized with the image fit modes);
  :func:`probe` gives a :class:`VideoInfo`; :class:`BackgroundSource` gives the background
  for a timestamp (a video looped or trimmed, an image, a colour, a blur).
- :mod:`core.video.convert`: :class:`VideoOptions`, :func:`plan`, :func:`frame_function`,
  :func:`video_pipeline` and :func:`convert_video`, which wires them.
- :mod:`core.video.stages`: :func:`run_stages`, read | process | write overlapping, a
  failure in one stopping the others.
- :mod:`core.video.writers`: :func:`video_format`, :class:`EncodedVideoWriter` (MP4/H.264,
  WebM/VP9 or MOV/ProRes 4444 with alpha, grey alpha mattes), :class:`PngSequenceWriter`,
  :class:`AudioCopier` (the foreground's sound, remuxed or transcoded).
- :mod:`core.video.cli` (``python -m core.video``): the command; :class:`VideoError`.
"""
from __future__ import annotations

from core.video.cli import build_parser, main
from core.video.convert import (
    DEFAULT_MATTER,
    DEFAULT_SEGMENTER,
    DEFAULT_SEGMENTER_MODE,
    OUTPUT_TYPES,
    SEGMENTER_MODES,
    TRANSPARENT_FORMATS,
    VIDEO_MATTER_OPTIONS,
    VIDEO_TRIMAP,
    ConvertResult,
    VideoOptions,
    convert_video,
    frame_function,
    frame_steps,
    parse_size,
    plan,
    video_pipeline,
)
from core.video.errors import VideoError
from core.video.reader import (
    VIDEO_SUFFIXES,
    AudioInfo,
    BackgroundSource,
    Frame,
    VideoInfo,
    VideoReader,
    probe,
)
from core.video.stages import StagesResult, run_stages
from core.video.writers import (
    REMUX_AUDIO,
    TRANSCODE_AUDIO,
    AudioCopier,
    EncodedVideoWriter,
    FrameWriter,
    PngSequenceWriter,
    VideoFormat,
    video_format,
)

__all__ = [
    "DEFAULT_MATTER",
    "DEFAULT_SEGMENTER",
    "DEFAULT_SEGMENTER_MODE",
    "OUTPUT_TYPES",
    "SEGMENTER_MODES",
    "REMUX_AUDIO",
    "TRANSCODE_AUDIO",
    "TRANSPARENT_FORMATS",
    "VIDEO_SUFFIXES",
    "VIDEO_MATTER_OPTIONS",
    "VIDEO_TRIMAP",
    "AudioCopier",
    "AudioInfo",
    "BackgroundSource",
    "ConvertResult",
    "EncodedVideoWriter",
    "Frame",
    "FrameWriter",
    "PngSequenceWriter",
    "StagesResult",
    "VideoError",
    "VideoFormat",
    "VideoInfo",
    "VideoOptions",
    "VideoReader",
    "build_parser",
    "convert_video",
    "frame_function",
    "frame_steps",
    "main",
    "parse_size",
    "probe",
    "plan",
    "run_stages",
    "video_format",
    "video_pipeline",
]
