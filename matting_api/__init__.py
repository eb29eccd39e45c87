"""Matting service (port 5000): the user's photo in, people composited out.

Each request runs :class:`core.pipeline.Pipeline` with the segmentation service as its
person source (:class:`matting_api.segmentation_client.RemotePersonSource`): segmentation
finds the people and builds the trimap; here alpha and foreground colours are estimated in
the unknown band and the requested output is rendered.

Endpoints (see README "API"):
    POST /matte      image (+ background file, + trimap file) -> PNG/JPEG/WebP/.npy
    POST /           the original JSON API: {"image"} -> {"output"} over green
    POST /with_bg    the original JSON API: {"image", "bg"} -> {"output"}
    GET  /health     includes whether segmentation and the job queue are reachable
    /jobs...         video and photo jobs on the queue (see jobs.api)
"""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, current_app, jsonify

from core.compositing import DEFAULT_BACKGROUND, FIT_MODES
from core.errors import ConfigError, ParameterError
from core.images import decode_image
from core.matters import create_matter
from core.people import parse_selection
from core.pipeline import OUTPUT_TYPES, Pipeline, render
from core.trimap import TrimapParams, decode_trimap
from jobs import api as jobs_api
from matting_api import web
from matting_api.segmentation_client import RemotePersonSource
from service_common.admission import admitted, seconds_left
from service_common.app import new_app, serving_facts
from service_common.config import backend_options
from service_common.fetch import AddressPolicy, fetch
from service_common.openapi import PEOPLE, Field, Operation, error_responses, trimap_fields
from service_common.settings import MATTING_SETTINGS as SETTINGS
from service_common.timing import StageTimer
from service_common.wire import (
    check_params,
    choice_param,
    image_response,
    int_param,
    json_body,
    json_image,
    output_format,
    params,
    people_header,
    uploaded_bytes,
)

log = logging.getLogger(__name__)

__all__ = ["SETTINGS", "create_app"]

MATTE_FIELDS = [
    Field("image", {}, "the photo (a file part, or the raw request body)", file=True),
    Field("image_url", {"type": "string", "format": "uri"},
          "or fetch the photo from this http(s) URL (public addresses only, unless allowed "
          "by URL_ALLOWLIST)"),
    Field("output", {"type": "string", "enum": list(OUTPUT_TYPES)}, "what to render"),
    Field("background", {"type": "string"}, "#RRGGBB, a colour name, blur, blur:N, "
          "transparent; or a file part (an image to put behind the people)"),
    Field("fit", {"type": "string", "enum": list(FIT_MODES)}, "how a background image is fitted"),
    Field("format", {"type": "string", "enum": ["png", "jpeg", "jpg", "webp", "npy"]},
          "output file format"),
    Field("alpha_bits", {"type": "integer", "enum": [8, 16]}, "bits of the alpha output"),
    Field("max_people", {"type": "integer", "minimum": 1},
          "look for at most this many people (the most prominent)"),
    PEOPLE,
    Field("trimap", {}, "your own trimap (0/128/255 image, or .npy): skips segmentation",
          file=True),
    *trimap_fields(),
]
OPERATIONS = [
    Operation("/", "GET", "The web page: drop a photo or a video, pick a background, compare, "
              "download", open=True, responses={200: (("text/html",), "HTML page")}),
    Operation("/matte", "POST", "The photo's people, rendered as asked", MATTE_FIELDS,
              raw_image=True,
              responses={200: (("image/png", "image/jpeg", "image/webp", "application/x-npy"),
                               "the rendered image"),
                         **error_responses(400, 413, 429, 503)}),
    *[Operation(path, "POST", f"The original JSON API: {what}",
                json_body={"type": "object", "required": ["image"],
                           "properties": {"image": {"type": "array"}, "bg": {"type": "array"}}},
                responses={200: (("application/json",), "{output: H x W x 3}"),
                           **error_responses(400, 413, 429, 503)})
      for path, what in (("/", "{image} -> {output} over green"),
                         ("/with_bg", "{image, bg} -> {output} over bg"))],
]

bp = Blueprint("matting", __name__)


def _pipeline() -> Pipeline:
    return current_app.extensions["pipeline"]


def _background(values):
    data = uploaded_bytes("background", required=False)
    if data is not None:
        return decode_image(data, current_app.config["MAX_PIXELS"], field="background")
    return values.get("background") or DEFAULT_BACKGROUND


def _image_bytes(values: dict) -> bytes:
    """The photo: a file part or the raw body, or fetched from ``image_url``."""
    url = values.get("image_url")
    sent = uploaded_bytes("image", required=not url)
    if url and sent:
        raise ParameterError("send either an image or an image_url, not both")
    if not url:
        return sent
    config = current_app.config
    return fetch(url, max_bytes=int(config["MAX_UPLOAD_MB"]) * 1024 * 1024,
                 policy=current_app.extensions["url_policy"],
                 timeout=min(float(config["URL_TIMEOUT"]), seconds_left(config["URL_TIMEOUT"])))


@bp.post("/matte")
@admitted
def matte_endpoint():
    timer = StageTimer()
    values = params()
    check_params(values, {f.name for f in MATTE_FIELDS})
    output_type = choice_param(values, "output", OUTPUT_TYPES, "composite")
    fit = choice_param(values, "fit", FIT_MODES, "cover")
    fmt = output_format(values)
    alpha_bits = int_param(values, "alpha_bits", 8, choices=(8, 16))
    max_people = int_param(values, "max_people", None, minimum=1)
    people = parse_selection(values.get("people"))
    trimap_options = TrimapParams.parse(values)
    image_bytes = _image_bytes(values)
    image = decode_image(image_bytes, current_app.config["MAX_PIXELS"])
    background = _background(values)
    user_trimap = uploaded_bytes("trimap", required=False)
    if user_trimap is not None:
        user_trimap = decode_trimap(user_trimap, image.shape[:2], current_app.config["MAX_PIXELS"])
    timer.lap("decode")
    result = _pipeline().run(image, trimap=user_trimap, encoded=image_bytes,
                             trimap_options=trimap_options, max_people=max_people,
                             people=people)
    timer.record(result.timings)
    if output_type == "alpha" and fmt == "npy":
        out = result.alpha
    else:
        out = render(result, output_type, background, fit, alpha_bits)
    timer.lap("composite")
    response = image_response(out, fmt)
    timer.lap("encode")
    response.headers["X-Person-Found"] = str(result.person_found).lower()
    response.headers["X-People"] = people_header(result.people)
    response.headers["X-Matting-Backend"] = _pipeline().matter.name
    response.headers["Server-Timing"] = timer.header()
    return response


def _legacy(background_key: str | None):
    body = json_body()
    image = json_image(body)
    background = DEFAULT_BACKGROUND
    if background_key is not None:
        background = json_image(body, background_key)
    result = _pipeline().run(image)
    return jsonify({"output": render(result, "composite", background, "cover").tolist()})


@bp.post("/")
@admitted
def legacy_json():
    """The original API: ``{"image": HxWx3}`` -> ``{"output": HxWx3}`` over green."""
    return _legacy(None)


@bp.post("/with_bg")
@admitted
def legacy_json_with_background():
    """The original API: ``{"image", "bg"}`` -> ``{"output"}`` over ``bg`` (fitted, cover)."""
    return _legacy("bg")


@bp.get("/health")
def health():
    segmentation = _pipeline().source.health()
    return jsonify({"status": "ok" if segmentation["reachable"] else "degraded",
                    "service": "matting",
                    "backend": _pipeline().matter.describe(),
                    "segmentation": segmentation,
                    "jobs": jobs_api.health_facts(current_app),
                    **serving_facts(current_app)})


def create_app(config: dict | None = None) -> Flask:
    """Application factory.

    Args:
        config: overrides of :data:`SETTINGS` keys (defaults < environment < this).
            ``MATTER`` may hold a ready matting backend instance.
    Raises:
        ConfigError: an unknown setting, backend or option (named with the valid ones).
        BackendUnavailable: the configured backend cannot run here.
    """
    app = new_app(__name__, SETTINGS, config, title="Matting service",
                  description="Removes or replaces the background behind people in photos.",
                  operations=[*OPERATIONS, *jobs_api.OPERATIONS])
    matter = app.config.get("MATTER") or create_matter(
        app.config["BACKEND"], backend_options(SETTINGS, app.config))
    if app.config["WARMUP"]:
        started = time.perf_counter()
        matter.warm_up()
        log.info("matting backend warmed up in %.1f s", time.perf_counter() - started)
    source = RemotePersonSource(app.config["SEGMENTATION_URL"], app.config["SEGMENTATION_TIMEOUT"],
                                api_key=app.config["SEGMENTATION_API_KEY"] or None)
    try:
        app.extensions["url_policy"] = AddressPolicy(app.config["URL_ALLOWLIST"].split(","))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    app.extensions["pipeline"] = Pipeline(source, matter)
    log.info("matting service ready: backend %s, segmentation at %s",
             matter.describe(), app.config["SEGMENTATION_URL"])
    app.register_blueprint(bp)
    app.register_blueprint(web.bp)
    jobs_api.init_app(app)
    return app
