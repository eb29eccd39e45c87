"""Segmentation service (port 3000): finds every person and returns a trimap.

Endpoints (see README "API"):
    POST /trimap   image file or .npy -> trimap PNG / .npy (0 / 128 / 255), 406 when nobody is
                   found; ``format=npz``: the trimap, the soft mask and the people found
                   (what the matting service asks for; :func:`service_common.wire.encode_segmentation`)
    POST /mask     image -> soft person mask PNG (0..255) or .npy (float 0..1)
    POST /         the original JSON API: {"image": HxWx3} -> {"trimap": HxWx2} or 406
    GET  /health

Every request goes through the engine's :class:`core.pipeline.LocalPersonSource`, the same
code the command line's ``--local`` mode and the video loop run.
"""
from __future__ import annotations

import logging

import numpy as np
from flask import Blueprint, Flask, Response, current_app, jsonify

from core.errors import NoPersonError
from core.images import to_uint8
from core.people import parse_selection
from core.pipeline import LocalPersonSource
from core.segmenters import create_segmenter
from core.trimap import TrimapParams, to_two_channel
from service_common.admission import admitted
from service_common.app import new_app, serving_facts
from service_common.config import backend_options, trimap_config
from service_common.openapi import PEOPLE, Field, Operation, error_responses, trimap_fields
from service_common.settings import SEGMENTATION_SETTINGS as SETTINGS
from service_common.timing import StageTimer
from service_common.wire import (
    NPZ_MIMETYPE,
    check_params,
    encode_segmentation,
    image_response,
    int_param,
    json_body,
    json_image,
    output_format,
    params,
    people_header,
    read_image,
)

log = logging.getLogger(__name__)

__all__ = ["SETTINGS", "create_app"]

bp = Blueprint("segmentation", __name__)

IMAGE = Field("image", {}, "the photo (a file part, or the raw request body)", file=True)
MAX_PEOPLE = Field("max_people", {"type": "integer", "minimum": 1},
                   "keep at most this many people (the most prominent)")
TRIMAP_FIELDS = [IMAGE, *trimap_fields(), MAX_PEOPLE, PEOPLE,
                 Field("format", {"type": "string", "enum": ["png", "jpeg", "jpg", "webp", "npy",
                                                             "npz"]},
                       "png/...: the trimap as an image; npy: as an array; npz: trimap, soft "
                       "mask and people (boxes, scores, areas)")]
MASK_FIELDS = [IMAGE, MAX_PEOPLE,
               Field("format", {"type": "string", "enum": ["png", "jpeg", "jpg", "webp", "npy"]},
                     "png/...: 0..255; npy: float 0..1")]
IMAGES_OUT = ("image/png", "image/jpeg", "image/webp", "application/x-npy")
OPERATIONS = [
    Operation("/trimap", "POST", "The trimap of the people in a photo (0 / 128 / 255)",
              TRIMAP_FIELDS, raw_image=True,
              responses={200: (IMAGES_OUT + ("application/x-segmentation-npz",), "the trimap"),
                         **error_responses(400, 406, 413, 429, 503)}),
    Operation("/mask", "POST", "The soft person mask of a photo", MASK_FIELDS, raw_image=True,
              responses={200: (IMAGES_OUT, "the mask"), **error_responses(400, 413, 429, 503)}),
    Operation("/", "POST", "The original JSON API: {image: H x W x 3} -> {trimap: H x W x 2}",
              json_body={"type": "object", "required": ["image"],
                         "properties": {"image": {"type": "array"}}},
              responses={200: (("application/json",), "the two-channel trimap"),
                         **error_responses(400, 406, 413, 429, 503)}),
]


def _source() -> LocalPersonSource:
    return current_app.extensions["person_source"]


def _timed_response(response: Response, timer: StageTimer, headers: dict) -> Response:
    timer.lap("encode")
    response.headers["Server-Timing"] = timer.header()
    for key, value in headers.items():
        response.headers[key] = value
    return response


@bp.post("/trimap")
@admitted
def trimap_endpoint():
    timer = StageTimer()
    values = params()
    check_params(values, {f.name for f in TRIMAP_FIELDS})
    fmt = output_format(values, allowed=("png", "jpeg", "jpg", "webp", "npy", "npz"))
    trimap_options = TrimapParams.parse(values)
    _source().params_for(trimap_options)  # a bad field is a 400 before any work is done
    max_people = int_param(values, "max_people", None, minimum=1)
    people = parse_selection(values.get("people"))
    image = read_image()
    timer.lap("decode")
    segmentation = _source().segment(image, trimap=trimap_options, max_people=max_people,
                                     people=people)
    timer.record(segmentation.timings)
    if not segmentation.person_found:
        if segmentation.people and not people.everyone:
            raise NoPersonError(f"people={values.get('people')} kept nobody of the "
                                f"{len(segmentation.people)} found")
        raise NoPersonError("no person found in the image")
    headers = {"X-Person-Found": "true", "X-People-Count": str(len(segmentation.people)),
               "X-People": people_header(segmentation.people)}
    if fmt == "npz":
        return _timed_response(Response(encode_segmentation(segmentation), mimetype=NPZ_MIMETYPE),
                               timer, headers)
    return _timed_response(image_response(segmentation.trimap, fmt), timer, headers)


@bp.post("/mask")
@admitted
def mask_endpoint():
    timer = StageTimer()
    values = params()
    check_params(values, {f.name for f in MASK_FIELDS})
    fmt = output_format(values)
    max_people = int_param(values, "max_people", None, minimum=1)
    image = read_image()
    timer.lap("decode")
    mask = _source().segmenter.segment(image, max_people=max_people)
    timer.lap("segmentation")
    out = mask.astype(np.float32) if fmt == "npy" else to_uint8(mask)
    return _timed_response(image_response(out, fmt), timer,
                           {"X-Person-Found": str(bool((mask >= 0.5).any())).lower()})


@bp.post("/")
@admitted
def legacy_json():
    """The original API: ``{"image": HxWx3 list}`` -> ``{"trimap": HxWx2 list}`` or 406."""
    image = json_image(json_body())
    segmentation = _source().segment(image)
    if not segmentation.person_found:
        raise NoPersonError("no person found in the image")
    return jsonify({"trimap": to_two_channel(segmentation.trimap).tolist()})


@bp.get("/health")
def health():
    source = _source()
    return jsonify({"status": "ok", "service": "segmentation",
                    "backend": source.segmenter.describe(),
                    "trimap_defaults": source.trimap_params.__dict__,
                    **serving_facts(current_app)})


def create_app(config: dict | None = None) -> Flask:
    """Application factory.

    Args:
        config: overrides of :data:`SETTINGS` keys (defaults < environment < this).
            ``SEGMENTER`` may hold a ready segmenter instance (tests, notebooks).
    Raises:
        ConfigError: an unknown setting, backend or option (named with the valid ones).
        BackendUnavailable: the configured backend cannot run here.
    """
    app = new_app(__name__, SETTINGS, config, title="Segmentation service",
                  description="Finds every person in a photo and builds its trimap.",
                  operations=OPERATIONS)
    segmenter = app.config.get("SEGMENTER") or create_segmenter(
        app.config["BACKEND"], backend_options(SETTINGS, app.config))
    app.extensions["person_source"] = LocalPersonSource(segmenter, trimap_config(app.config))
    log.info("segmentation service ready: backend %s", segmenter.describe())
    app.register_blueprint(bp)
    return app
