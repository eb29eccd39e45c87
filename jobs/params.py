"""What a job asks for: :class:`JobParams`, read from a ``POST /jobs`` request's fields
(:func:`parse`) and stored with the job as JSON, so any worker reads the same thing.

The fields are the video command's (``python -m core.video``) and ``POST /matte``'s: one
declaration each (:data:`FIELDS`), which the OpenAPI document shows and the endpoint checks
against.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.compositing import DEFAULT_BACKGROUND, FIT_MODES, make_background
from core.errors import ParameterError
from core.matters import MATTERS
from core.people import parse_selection
from core.pipeline import OUTPUT_TYPES as PHOTO_OUTPUTS
from core.segmenters import SEGMENTERS
from core.trimap import TrimapParams
from core.video import convert as video_convert
from core.video.convert import OUTPUT_TYPES as VIDEO_OUTPUTS
from core.video.convert import parse_size
from service_common.openapi import PEOPLE, Field, trimap_fields

KINDS = ("video", "photos")
# Containers of a video result, by output type; the first is the default.
VIDEO_FORMATS = {"composite": ("mp4", "mov", "mkv", "webm"), "alpha": ("mp4", "mov", "mkv", "webm"),
                 "transparent": ("webm", "mov"), "png": ("zip",)}
PHOTO_FORMATS = ("png", "jpeg", "webp", "npy")
MEDIA_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "mkv": "video/x-matroska",
               "webm": "video/webm", "zip": "application/zip"}
# MediaPipe's modes: a photo is segmented in fast or accurate mode; video takes the video
# loop's modes (which may add more, e.g. one that follows people from frame to frame).
PHOTO_SEGMENTER_MODES = ("fast", "accurate")
SEGMENTER_MODES = tuple(getattr(video_convert, "SEGMENTER_MODES", PHOTO_SEGMENTER_MODES))

FIELDS = [
    Field("video", {}, "the video (any format FFmpeg reads); or send photos", file=True),
    Field("photos", {}, "a zip of photos (JPEG, PNG, WebP, TIFF, BMP; folders kept); or send "
          "a video", file=True),
    Field("output", {"type": "string", "enum": sorted(set(VIDEO_OUTPUTS) | set(PHOTO_OUTPUTS))},
          "video: composite (default), transparent, alpha, png (a zip of RGBA frames); "
          "photos: composite (default), cutout, alpha, foreground, trimap"),
    Field("background", {"type": "string"}, "#RRGGBB, a colour name, blur, blur:N (photos: "
          "also transparent); or a file part: an image, or (video) a video looped under it"),
    Field("fit", {"type": "string", "enum": list(FIT_MODES)}, "how the background (and the "
          "video, when size changes its aspect) is fitted"),
    Field("format", {"type": "string", "enum": sorted({f for fs in VIDEO_FORMATS.values() for f in fs}
                                                     | set(PHOTO_FORMATS) | {"jpg"})},
          "video: mp4 (default), mov, mkv, webm; transparent: webm (default), mov; png: zip. "
          "photos: png (default), jpeg, webp, npy"),
    Field("size", {"type": "string", "pattern": "^[0-9]{1,5}(x[0-9]{1,5})?$"},
          "video: output WIDTHxHEIGHT, or WIDTH keeping the aspect (default: the video's)"),
    Field("max_frames", {"type": "integer", "minimum": 1}, "video: stop after this many frames"),
    Field("audio", {"type": "integer", "enum": [0, 1]}, "video: keep the sound (default 1)"),
    Field("smoothing", {"type": "integer", "enum": [0, 1]},
          "video: temporal smoothing of masks and alpha (default 1)"),
    Field("crf", {"type": "integer", "minimum": 0, "maximum": 51},
          "video: H.264 quality, lower is better (default 20)"),
    Field("segmenter", {"type": "string", "enum": ["auto", *SEGMENTERS]},
          "person segmenter (default: video mediapipe, photos auto)"),
    Field("segmenter_mode", {"type": "string", "enum": sorted(set(SEGMENTER_MODES)
                                                              | set(PHOTO_SEGMENTER_MODES))},
          "mediapipe: fast (selfie model) or accurate (the photo default); video: also the "
          "video loop's own modes (default: the video command's)"),
    Field("matter", {"type": "string", "enum": ["auto", *MATTERS]},
          "matting backend (default: video guided-filter, photos auto)"),
    Field("alpha_bits", {"type": "integer", "enum": [8, 16]}, "photos: bits of the alpha output"),
    PEOPLE,
    Field("max_people", {"type": "integer", "minimum": 1},
          "keep at most this many people (the most prominent; mediapipe: accurate mode)"),
    *trimap_fields(),
]
FILE_FIELDS = ("video", "photos", "background")


@dataclass
class JobParams:
    """A job's parameters, as stored with it (:meth:`to_dict` / :meth:`from_dict`).

    ``background_file`` is the name of the uploaded background in the job's folder;
    ``background`` the spec otherwise. ``trimap`` holds the trimap fields given.
    """

    kind: str
    output: str
    format: str
    background: str = DEFAULT_BACKGROUND
    background_file: str | None = None
    fit: str = "cover"
    size: str | None = None
    max_frames: int | None = None
    audio: bool = True
    smoothing: bool = True
    crf: int = 20
    segmenter: str | None = None
    segmenter_mode: str | None = None
    matter: str | None = None
    alpha_bits: int = 8
    max_people: int | None = None
    people: str = "all"
    trimap: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "JobParams":
        return cls(**data)

    @property
    def suffix(self) -> str:
        """The result's file suffix (``.mp4``, ``.zip``...)."""
        return "." + ("zip" if self.kind == "photos" else self.format)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES["zip" if self.kind == "photos" else self.format]

    @property
    def run_options(self) -> dict:
        """Per-call options of :meth:`core.pipeline.Pipeline.run`."""
        out: dict[str, Any] = {}
        if self.max_people is not None:
            out["max_people"] = self.max_people
        if self.people != "all":
            out["people"] = parse_selection(self.people)
        if self.trimap:
            out["trimap_options"] = dict(self.trimap)
        return out

    def video_options(self) -> dict:
        """Keyword arguments of :class:`core.video.VideoOptions` (``max_frames`` is the job's)."""
        output_type = self.output
        return {"output_type": output_type,
                "format": self.format if output_type == "transparent" else None,
                "fit": self.fit, "size": self.size, "audio": self.audio,
                "smoothing": self.smoothing, "crf": self.crf}

    def result_name(self, upload_name: str) -> str:
        """The download name: the upload's stem, the output type, the result's suffix."""
        stem = upload_name.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "job"
        kind = "frames" if self.output == "png" else self.output
        return f"{stem}_{kind}{self.suffix}"


def _choice(values: dict, name: str, choices, default):
    value = values.get(name)
    if value in (None, ""):
        return default
    value = value.lower() if isinstance(value, str) else value
    if value not in choices:
        raise ParameterError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _int(values: dict, name: str, default, lo=None, hi=None, choices=None):
    raw = values.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ParameterError(f"{name} must be a whole number, got {raw!r}") from None
    if choices is not None and value not in choices:
        raise ParameterError(f"{name} must be one of {list(choices)}, got {value}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ParameterError(f"{name} must lie in [{lo}, {hi if hi is not None else '...'}], "
                             f"got {value}")
    return value


def parse(values: dict[str, str], kind: str, background_file: str | None = None) -> JobParams:
    """Check a request's text fields for a ``kind`` job (``video`` or ``photos``).

    Args:
        values: the text fields (query and form), unknown ones already refused.
        background_file: the name the uploaded background will have in the job's folder.
    Raises:
        ParameterError: a value out of range or one that does not apply to ``kind``
            (the message names the field and the valid values).
    """
    if kind not in KINDS:
        raise ParameterError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    video = kind == "video"
    outputs = VIDEO_OUTPUTS if video else PHOTO_OUTPUTS
    output = _choice(values, "output", outputs, "composite")
    if video:
        formats = VIDEO_FORMATS[output]
    else:
        formats = PHOTO_FORMATS
    fmt = values.get("format")
    fmt = "jpeg" if isinstance(fmt, str) and fmt.lower() == "jpg" and not video else fmt
    fmt = _choice({"format": fmt}, "format", formats, formats[0])
    only_video = ("size", "max_frames", "audio", "smoothing", "crf")
    for name in (only_video if not video else ("alpha_bits",)):
        if values.get(name) not in (None, ""):
            raise ParameterError(f"{name} applies to {'videos' if not video else 'photos'} only")
    background = values.get("background") or DEFAULT_BACKGROUND
    if background_file is None:
        if video and background.strip().lower() == "transparent":
            raise ParameterError("background=transparent: ask for output=transparent instead")
        import numpy as np

        make_background(background, np.zeros((2, 2, 3), np.float32))  # ParameterError if bad
    size = values.get("size") or None
    if size is not None:
        parse_size(size, (2, 2))  # ParameterError if it does not parse
    trimap = TrimapParams.parse(values)
    TrimapParams.resolve(trimap)  # ParameterError when out of range
    return JobParams(
        kind=kind, output=output, format=fmt, background=background,
        background_file=background_file,
        fit=_choice(values, "fit", FIT_MODES, "cover"), size=size,
        max_frames=_int(values, "max_frames", None, lo=1),
        audio=bool(_int(values, "audio", 1, choices=(0, 1))),
        smoothing=bool(_int(values, "smoothing", 1, choices=(0, 1))),
        crf=_int(values, "crf", 20, lo=0, hi=51),
        segmenter=_choice(values, "segmenter", ("auto", *SEGMENTERS), None),
        segmenter_mode=_choice(values, "segmenter_mode",
                               SEGMENTER_MODES if video else PHOTO_SEGMENTER_MODES, None),
        matter=_choice(values, "matter", ("auto", *MATTERS), None),
        alpha_bits=_int(values, "alpha_bits", 8, choices=(8, 16)),
        max_people=_int(values, "max_people", None, lo=1),
        people=parse_selection(values.get("people")).as_param(),
        trimap=trimap,
    )
