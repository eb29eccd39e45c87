"""Matting service (port 5000): the user's photo in, people composited out.

It asks the segmentation service for the trimap (or takes the user's own), estimates
alpha and foreground colours in the unknown band, and renders the requested output.

Endpoints (see README "API"):
    POST /matte      image (+ background file, + trimap file) -> PNG/JPEG/WebP/.npy
    POST /           the original JSON API: {"image"} -> {"output"} over green
    POST /with_bg    the original JSON API: {"image", "bg"} -> {"output"}
    GET  /health     includes whether segmentation is reachable
"""
from __future__ import annotations

import io
import logging
import time

import numpy as np
from flask import Blueprint, Flask, current_app, jsonify

from core.compositing import DEFAULT_BACKGROUND, FIT_MODES
from core.images import NPY_MAGIC, decode_image
from core.matters import create_matter
from core.pipeline import OUTPUT_TYPES, matte_with_trimap, render
from core.trimap import BACKGROUND, normalize_trimap
from matting_api.segmentation_client import SegmentationClient
from service_common.app import new_app
from service_common.config import COMMON_SETTINGS, Setting
from service_common.errors import APIError
from service_common.timing import StageTimer
from service_common.wire import (
    image_response,
    json_body,
    json_image,
    output_format,
    params,
    uploaded_bytes,
)

log = logging.getLogger(__name__)

SETTINGS = [
    Setting("PORT", "MATTING_PORT", 5000, "port to listen on", int),
    Setting("BACKEND", "MATTING_BACKEND", "auto",
            "matting backend: auto, fba, closed-form, ... (auto = fba when models/FBA.pth "
            "exists, else closed-form)"),
    Setting("SEGMENTATION_URL", "SEGMENTATION_URL", "http://127.0.0.1:3000",
            "where the segmentation service listens"),
    Setting("SEGMENTATION_TIMEOUT", "SEGMENTATION_TIMEOUT", 120.0,
            "seconds to wait for a trimap", float),
    Setting("FBA_WEIGHTS", "FBA_WEIGHTS", "", "path of FBA.pth (default: MODELS_DIR/FBA.pth)"),
    Setting("FBA_MAX_SIZE", "FBA_MAX_SIZE", "auto", "fba: longest side the network runs at "
            "('auto': 1280 on CPU, 2048 on CUDA; 0: no cap)"),
    Setting("FBA_HALF", "FBA_HALF", 0, "fba: half precision on CUDA (1/0)", int),
    Setting("CLOSED_FORM_MAX_UNKNOWN", "CLOSED_FORM_MAX_UNKNOWN", 50_000,
            "closed-form: unknown pixels solved at full resolution before downscaling "
            "(0: always full resolution)", int),
    Setting("WARMUP", "MATTING_WARMUP", 1, "matte a tiny image at start-up so the first "
            "request does not pay for JIT compilation (1/0)", int),
    *COMMON_SETTINGS,
]

# Parameters of a /matte request forwarded to segmentation (trimap shape, people kept).
FORWARDED_PARAMS = ("method", "fg_threshold", "unknown_threshold", "binary_threshold",
                    "kernel_size", "erode_iterations", "dilate_iterations", "band_scale",
                    "max_people")

bp = Blueprint("matting", __name__)


def _decode_trimap(data: bytes) -> np.ndarray:
    if data[:6] == NPY_MAGIC:
        try:
            raw = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise APIError(400, f"corrupt .npy trimap: {exc}", "invalid_trimap") from None
    else:
        raw = decode_image(data, current_app.config["MAX_PIXELS"])
    return normalize_trimap(raw)


def _trimap_for(image, image_bytes, values, timer: StageTimer):
    """``(trimap, mask)``: the user's trimap if they sent one (no mask), else
    segmentation's trimap and soft mask (``(None, None)``: nobody found)."""
    user_trimap = uploaded_bytes("trimap", required=False)
    if user_trimap is not None:
        trimap = _decode_trimap(user_trimap)
        if trimap.shape != image.shape[:2]:
            raise APIError(400, f"trimap is {trimap.shape[1]}x{trimap.shape[0]} but the image "
                           f"is {image.shape[1]}x{image.shape[0]}", "invalid_trimap")
        timer.lap("trimap_decode")
        return trimap, None
    forwarded = {k: values[k] for k in FORWARDED_PARAMS if k in values}
    trimap, mask, timing = current_app.extensions["segmentation"].trimap(image, image_bytes,
                                                                          forwarded)
    timer.lap("segmentation")
    # Split the round trip into the remote work and what the wire cost.
    timer.stages["segmentation"] -= timing["round_trip_ms"] - timing["server_ms"]
    timer.stages["transport"] = timing["round_trip_ms"] - timing["server_ms"]
    return trimap, mask


def _background(values):
    data = uploaded_bytes("background", required=False)
    if data is not None:
        return decode_image(data, current_app.config["MAX_PIXELS"])
    return values.get("background") or DEFAULT_BACKGROUND


def _matte_image(image, trimap, mask, timer):
    if trimap is None:
        trimap = np.full(image.shape[:2], BACKGROUND, np.uint8)
    result = matte_with_trimap(image, trimap, current_app.extensions["matter"], mask)
    timer.lap("matting")
    return result


@bp.post("/matte")
def matte_endpoint():
    timer = StageTimer()
    values = params()
    output_type = values.get("output", "composite")
    if output_type not in OUTPUT_TYPES or output_type == "mask":
        raise APIError(400, f"output must be one of {[t for t in OUTPUT_TYPES if t != 'mask']}, "
                       f"got {output_type!r}", "invalid_parameter")
    fit = values.get("fit", "cover")
    if fit not in FIT_MODES:
        raise APIError(400, f"fit must be one of {FIT_MODES}, got {fit!r}", "invalid_parameter")
    fmt = output_format(values)
    try:
        alpha_bits = int(values.get("alpha_bits", 8))
    except ValueError:
        raise APIError(400, "alpha_bits must be 8 or 16", "invalid_parameter") from None
    image_bytes = uploaded_bytes("image")
    image = decode_image(image_bytes, current_app.config["MAX_PIXELS"])
    background = _background(values)
    timer.lap("decode")
    trimap, mask = _trimap_for(image, image_bytes, values, timer)
    result = _matte_image(image, trimap, mask, timer)
    if output_type == "alpha" and fmt == "npy":
        out = result.alpha
    else:
        out = render(result, output_type, background, fit, alpha_bits)
    timer.lap("composite")
    response = image_response(out, fmt)
    timer.lap("encode")
    response.headers["X-Person-Found"] = str(result.person_found).lower()
    response.headers["X-Matting-Backend"] = current_app.extensions["matter"].name
    response.headers["Server-Timing"] = timer.header()
    return response


def _legacy(background_key: str | None):
    body = json_body()
    image = json_image(body)
    background = DEFAULT_BACKGROUND
    if background_key is not None:
        background = json_image(body, background_key)
    timer = StageTimer()
    trimap, mask = _trimap_for(image, None, {}, timer)
    result = _matte_image(image, trimap, mask, timer)
    return jsonify({"output": render(result, "composite", background, "cover").tolist()})


@bp.post("/")
def legacy_json():
    """The original API: ``{"image": HxWx3}`` -> ``{"output": HxWx3}`` over green."""
    return _legacy(None)


@bp.post("/with_bg")
def legacy_json_with_background():
    """The original API: ``{"image", "bg"}`` -> ``{"output"}`` over ``bg`` (fitted, cover)."""
    return _legacy("bg")


@bp.get("/health")
def health():
    segmentation = current_app.extensions["segmentation"].health()
    return jsonify({"status": "ok" if segmentation["reachable"] else "degraded",
                    "service": "matting",
                    "backend": current_app.extensions["matter"].describe(),
                    "segmentation": segmentation})


def _warm_up(matter) -> None:
    started = time.perf_counter()
    image = np.zeros((32, 32, 3), np.float32)
    image[8:24, 8:24] = 1.0
    trimap = np.zeros((32, 32), np.uint8)
    trimap[6:26, 6:26] = 128
    trimap[12:20, 12:20] = 255
    matter.matte(image, trimap)
    log.info("matting backend warmed up in %.1f s", time.perf_counter() - started)


def create_app(config: dict | None = None) -> Flask:
    """Application factory.

    Args:
        config: overrides of :data:`SETTINGS` keys (defaults < environment < this).
            ``MATTER`` may hold a ready matting backend instance.
    """
    app = new_app(__name__, SETTINGS, config)
    matter = app.config.get("MATTER") or create_matter(
        app.config["BACKEND"], device=app.config["DEVICE"],
        models_dir=app.config["MODELS_DIR"] or None,
        weights_path=app.config["FBA_WEIGHTS"] or None, max_size=app.config["FBA_MAX_SIZE"],
        half=bool(app.config["FBA_HALF"]), max_unknown=app.config["CLOSED_FORM_MAX_UNKNOWN"])
    if app.config["WARMUP"]:
        _warm_up(matter)
    app.extensions["matter"] = matter
    app.extensions["segmentation"] = SegmentationClient(app.config["SEGMENTATION_URL"],
                                                        app.config["SEGMENTATION_TIMEOUT"])
    log.info("matting service ready: backend %s, segmentation at %s",
             matter.describe(), app.config["SEGMENTATION_URL"])
    app.register_blueprint(bp)
    return app
