"""Segmentation service (port 3000): finds every person and returns a trimap.

Endpoints (see README "API"):
    POST /trimap   image file or .npy -> trimap PNG (0 / 128 / 255), 406 when nobody is found
                   (``max_people=N``: keep the N most confident people, Mask R-CNN;
                   ``include_mask=1``: a second channel with the soft mask, 0..255)
    POST /mask     image -> soft person mask PNG (0..255)
    POST /         the original JSON API: {"image": HxWx3} -> {"trimap": HxWx2} or 406
    GET  /health
"""
from __future__ import annotations

import inspect
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
    Setting("MEDIAPIPE_MODE", "MEDIAPIPE_MODE", "accurate",
            "mediapipe: 'accurate' (every person, pose + selfie models) or 'fast' (selfie only)"),
    Setting("MASKRCNN_VARIANT", "MASKRCNN_VARIANT", "v1",
            "maskrcnn: 'v1' (maskrcnn_resnet50_fpn, the original) or 'v2' (better masks)"),
    Setting("MASKRCNN_INFERENCE_SIZE", "MASKRCNN_INFERENCE_SIZE", None,
            "maskrcnn: shorter side the network sees (smaller is faster on CPU; default 480)", int),
    Setting("MASKRCNN_SCORE_THRESHOLD", "MASKRCNN_SCORE_THRESHOLD", 0.6,
            "maskrcnn: minimum person score", float),
    Setting("MAX_PEOPLE", "SEGMENTATION_MAX_PEOPLE", None,
            "keep at most N people (maskrcnn: the most confident; mediapipe: how many it "
            "looks for, default 6); default: the backend's", int),
    *COMMON_SETTINGS,
    *TRIMAP_SETTINGS,
]

# Settings handed to the backends as keyword options (each backend ignores the others').
BACKEND_OPTIONS = {"MEDIAPIPE_MODE": "mode", "MASKRCNN_VARIANT": "variant",
                   "MASKRCNN_INFERENCE_SIZE": "inference_size",
                   "MASKRCNN_SCORE_THRESHOLD": "score_threshold",
                   "MAX_PEOPLE": "max_people"}

bp = Blueprint("segmentation", __name__)


def _decode_and_segment(timer: StageTimer, values: dict) -> np.ndarray:
    segmenter = current_app.extensions["segmenter"]
    options = {}
    if values.get("max_people") not in (None, ""):
        if "max_people" not in inspect.signature(segmenter.segment).parameters:
            raise APIError(400, f"max_people is not supported by the {segmenter.name!r} "
                           "backend (use maskrcnn)", "invalid_parameter")
        try:
            options["max_people"] = int(values["max_people"])
        except ValueError:
            raise APIError(400, "max_people must be a whole number", "invalid_parameter") from None
        if options["max_people"] < 1:
            raise APIError(400, "max_people must be at least 1", "invalid_parameter")
    image = read_image()
    timer.lap("decode")
    mask = segmenter.segment(image, **options)
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
    mask = _decode_and_segment(timer, values)
    trimap = mask_to_trimap(mask, trimap_params)
    timer.lap("trimap")
    if not has_person(trimap):
        raise APIError(406, "no person found in the image", "no_person")
    if values.get("include_mask", "0").lower() in ("1", "true", "yes"):
        # Channel 1 carries the soft mask: matting uses it as a prior inside the band.
        trimap = np.dstack([trimap, to_uint8(mask)])
    return _timed_response(trimap, fmt, timer, {"X-Person-Found": "true"})


@bp.post("/mask")
def mask_endpoint():
    timer = StageTimer()
    values = params()
    fmt = output_format(values)
    mask = _decode_and_segment(timer, values)
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
    options = {option: app.config[key] for key, option in BACKEND_OPTIONS.items()
               if app.config[key] is not None}
    segmenter = app.config.get("SEGMENTER") or create_segmenter(
        app.config["BACKEND"], device=app.config["DEVICE"],
        models_dir=app.config["MODELS_DIR"] or None, **options)
    app.extensions["segmenter"] = segmenter
    app.extensions["trimap_defaults"] = trimap_defaults(app.config)
    log.info("segmentation service ready: backend %s", segmenter.describe())
    app.register_blueprint(bp)
    return app
