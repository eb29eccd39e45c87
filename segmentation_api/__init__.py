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

from core.errors import NoPersonError, ParameterError
from core.images import to_uint8
from core.pipeline import LocalPersonSource
from core.segmenters import create_segmenter
from core.trimap import TrimapParams, to_two_channel
from service_common.app import new_app
from service_common.config import backend_options, trimap_config
from service_common.settings import SEGMENTATION_SETTINGS as SETTINGS
from service_common.timing import StageTimer
from service_common.wire import (
    NPZ_MIMETYPE,
    check_params,
    encode_segmentation,
    image_response,
    json_body,
    json_image,
    output_format,
    params,
    read_image,
)

log = logging.getLogger(__name__)

__all__ = ["SETTINGS", "create_app"]

bp = Blueprint("segmentation", __name__)
TRIMAP_PARAMS = {*TrimapParams.names(), "max_people", "format"}
MASK_PARAMS = {"max_people", "format"}


def _source() -> LocalPersonSource:
    return current_app.extensions["person_source"]


def _max_people(values: dict) -> int | None:
    raw = values.get("max_people")
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ParameterError(f"max_people must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ParameterError(f"max_people must be at least 1, got {value}")
    return value


def _timed_response(response: Response, timer: StageTimer, headers: dict) -> Response:
    timer.lap("encode")
    response.headers["Server-Timing"] = timer.header()
    for key, value in headers.items():
        response.headers[key] = value
    return response


@bp.post("/trimap")
def trimap_endpoint():
    timer = StageTimer()
    values = params()
    check_params(values, TRIMAP_PARAMS)
    fmt = output_format(values, allowed=("png", "jpeg", "jpg", "webp", "npy", "npz"))
    trimap_options = TrimapParams.parse(values)
    _source().params_for(trimap_options)  # a bad field is a 400 before any work is done
    max_people = _max_people(values)
    image = read_image()
    timer.lap("decode")
    segmentation = _source().segment(image, trimap=trimap_options, max_people=max_people)
    timer.record(segmentation.timings)
    if not segmentation.person_found:
        raise NoPersonError("no person found in the image")
    headers = {"X-Person-Found": "true", "X-People-Count": str(len(segmentation.people))}
    if fmt == "npz":
        return _timed_response(Response(encode_segmentation(segmentation), mimetype=NPZ_MIMETYPE),
                               timer, headers)
    return _timed_response(image_response(segmentation.trimap, fmt), timer, headers)


@bp.post("/mask")
def mask_endpoint():
    timer = StageTimer()
    values = params()
    check_params(values, MASK_PARAMS)
    fmt = output_format(values)
    max_people = _max_people(values)
    image = read_image()
    timer.lap("decode")
    mask = _source().segmenter.segment(image, max_people=max_people)
    timer.lap("segmentation")
    out = mask.astype(np.float32) if fmt == "npy" else to_uint8(mask)
    return _timed_response(image_response(out, fmt), timer,
                           {"X-Person-Found": str(bool((mask >= 0.5).any())).lower()})


@bp.post("/")
def legacy_json():
    """The original API: ``{"image": HxWx3 list}`` -> ``{"trimap": HxWx2 list}`` or 406."""
    image = json_image(json_body())
    segmentation = _source().segment(image)
    if not segmentation.person_found:
        return jsonify({"error": "no person found in the image", "code": "no_person"}), 406
    return jsonify({"trimap": to_two_channel(segmentation.trimap).tolist()})


@bp.get("/health")
def health():
    source = _source()
    return jsonify({"status": "ok", "service": "segmentation",
                    "backend": source.segmenter.describe(),
                    "trimap_defaults": source.trimap_params.__dict__})


def create_app(config: dict | None = None) -> Flask:
    """Application factory.

    Args:
        config: overrides of :data:`SETTINGS` keys (defaults < environment < this).
            ``SEGMENTER`` may hold a ready segmenter instance (tests, notebooks).
    Raises:
        ConfigError: an unknown setting, backend or option (named with the valid ones).
        BackendUnavailable: the configured backend cannot run here.
    """
    app = new_app(__name__, SETTINGS, config)
    segmenter = app.config.get("SEGMENTER") or create_segmenter(
        app.config["BACKEND"], backend_options(SETTINGS, app.config))
    app.extensions["person_source"] = LocalPersonSource(segmenter, trimap_config(app.config))
    log.info("segmentation service ready: backend %s", segmenter.describe())
    app.register_blueprint(bp)
    return app
