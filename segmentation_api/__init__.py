"""Segmentation service (port 3000): finds every person and returns a trimap.

Endpoints (see README "API"):
    POST /trimap   image file or .npy -> trimap PNG (0 / 128 / 255), 406 when nobody is found
    POST /mask     image -> soft person mask PNG (0..255)
    POST /         the original JSON API: {"image": HxWx3} -> {"trimap": HxWx2} or 406
    GET  /health
"""
from __future__ import annotations

import logging

import numpy as np
from flask import Blueprint, Flask, current_app, jsonify

from core.images import to_uint8
from core.segmenters import create_segmenter
from core.trimap import TrimapParams, has_person, mask_to_trimap, to_two_channel
from service_common.app import new_app
from service_common.config import (
    COMMON_SETTINGS,
    TRIMAP_SETTINGS,
    Setting,
    trimap_defaults,
)
from service_common.errors import APIError
from service_common.timing import StageTimer
from service_common.wire import (
    image_response,
    json_body,
    json_image,
    output_format,
    params,
    read_image,
)

log = logging.getLogger(__name__)

SETTINGS = [
    Setting("PORT", "SEGMENTATION_PORT", 3000, "port to listen on", int),
    Setting("BACKEND", "SEGMENTATION_BACKEND", "auto",
            "person segmenter: auto, maskrcnn, mediapipe (auto = maskrcnn when its weights "
            "are present, else mediapipe)"),
    *COMMON_SETTINGS,
    *TRIMAP_SETTINGS,
]

bp = Blueprint("segmentation", __name__)


def _decode_and_segment(timer: StageTimer) -> np.ndarray:
    image = read_image()
    timer.lap("decode")
    mask = current_app.extensions["segmenter"].segment(image)
    timer.lap("segment")
    return mask


def _timed_response(out: np.ndarray, fmt: str, timer: StageTimer, headers: dict):
    response = image_response(out, fmt, headers)
    timer.lap("encode")
    response.headers["Server-Timing"] = timer.header()
    return response


def _request_trimap_params(values: dict) -> TrimapParams:
    return TrimapParams.from_mapping(values, base=current_app.extensions["trimap_defaults"])


@bp.post("/trimap")
def trimap_endpoint():
    timer = StageTimer()
    values = params()
    trimap_params = _request_trimap_params(values)
    fmt = output_format(values)
    mask = _decode_and_segment(timer)
    trimap = mask_to_trimap(mask, trimap_params)
    timer.lap("trimap")
    if not has_person(trimap):
        raise APIError(406, "no person found in the image", "no_person")
    return _timed_response(trimap, fmt, timer, {"X-Person-Found": "true"})


@bp.post("/mask")
def mask_endpoint():
    timer = StageTimer()
    fmt = output_format(params())
    mask = _decode_and_segment(timer)
    out = mask.astype(np.float32) if fmt == "npy" else to_uint8(mask)
    return _timed_response(out, fmt, timer,
                           {"X-Person-Found": str(bool((mask >= 0.5).any())).lower()})


@bp.post("/")
def legacy_json():
    """The original API: ``{"image": HxWx3 list}`` -> ``{"trimap": HxWx2 list}`` or 406."""
    image = json_image(json_body())
    mask = current_app.extensions["segmenter"].segment(image)
    trimap = mask_to_trimap(mask, current_app.extensions["trimap_defaults"])
    if not has_person(trimap):
        return jsonify({"error": "no person found in the image", "code": "no_person"}), 406
    return jsonify({"trimap": to_two_channel(trimap).tolist()})


@bp.get("/health")
def health():
    return jsonify({"status": "ok", "service": "segmentation",
                    "backend": current_app.extensions["segmenter"].describe(),
                    "trimap_defaults": current_app.extensions["trimap_defaults"].__dict__})


def create_app(config: dict | None = None) -> Flask:
    """Application factory.

    Args:
        config: overrides of :data:`SETTINGS` keys (defaults < environment < this).
            ``SEGMENTER`` may hold a ready segmenter instance (tests, notebooks).
    """
    app = new_app(__name__, SETTINGS, config)
    segmenter = app.config.get("SEGMENTER") or create_segmenter(
        app.config["BACKEND"], device=app.config["DEVICE"],
        models_dir=app.config["MODELS_DIR"] or None)
    app.extensions["segmenter"] = segmenter
    app.extensions["trimap_defaults"] = trimap_defaults(app.config)
    log.info("segmentation service ready: backend %s", segmenter.describe())
    app.register_blueprint(bp)
    return app
