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

One module per stage:

- :mod:`core.video.reader`: :class:`VideoReader`, :func:`probe`, :class:`VideoInfo`,
  :class:`AudioInfo`, :class:`Frame`, :class:`BackgroundSource`.
- :mod:`core.video.smoothing`: :class:`TemporalSmoother`, :func:`flicker`.
- :mod:`core.video.convert`: :class:`FrameProcessor`, :func:`composite_uint8`,
  :func:`convert_video`, :class:`ConvertResult`, :func:`parse_size`, the output types.
- :mod:`core.video.writers`: :func:`video_format`, :class:`EncodedVideoWriter`,
  :class:`PngSequenceWriter`, :class:`AudioCopier`.
- :mod:`core.video.cli` (run by ``__main__``): the command; :mod:`core.video.errors`:
  :class:`VideoError`. :func:`core.runtime.reuse_freed_memory` is re-exported here.

Everything is importable from ``core.video`` as before the split.
"""
from __future__ import annotations

from core.runtime import reuse_freed_memory
from core.video.cli import build_parser, main
from core.video.convert import (
    DEFAULT_MATTER,
    DEFAULT_SEGMENTER,
    OUTPUT_TYPES,
    TRANSPARENT_FORMATS,
    VIDEO_TRIMAP,
    ConvertResult,
    FrameProcessor,
    composite_uint8,
    convert_video,
    parse_size,
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
from core.video.smoothing import TemporalSmoother, flicker
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
    "OUTPUT_TYPES",
    "REMUX_AUDIO",
    "TRANSCODE_AUDIO",
    "TRANSPARENT_FORMATS",
    "VIDEO_SUFFIXES",
    "VIDEO_TRIMAP",
    "AudioCopier",
    "AudioInfo",
    "BackgroundSource",
    "ConvertResult",
    "EncodedVideoWriter",
    "Frame",
    "FrameProcessor",
    "FrameWriter",
    "PngSequenceWriter",
    "TemporalSmoother",
    "VideoError",
    "VideoFormat",
    "VideoInfo",
    "VideoReader",
    "build_parser",
    "composite_uint8",
    "convert_video",
    "flicker",
    "main",
    "parse_size",
    "probe",
    "reuse_freed_memory",
    "video_format",
]
