"""The part of both app factories that is the same."""
from __future__ import annotations

import io

from flask import Flask, request

from core.runtime import reuse_freed_memory
from service_common import auth
from service_common.admission import SHARED_ADMISSION, Admission
from service_common.config import Setting, load_config
from service_common.errors import register_error_handlers
from service_common.openapi import COMMON_OPERATIONS, Operation, blueprint


def new_app(import_name: str, settings: list[Setting], config: dict | None, *,
            title: str, description: str, operations: list[Operation]) -> Flask:
    """A Flask app configured from ``settings`` (defaults < environment < ``config``), with
    the request-size limit, JSON errors and request ids, admission control, metrics,
    optional API keys and rate limit, and its OpenAPI document (``operations``)."""
    from service_common.metrics import Metrics  # imported here: see service_common.server

    # Every request allocates image-sized arrays; let glibc reuse them rather than mmap
    # fresh pages each time (see core.runtime).
    reuse_freed_memory()
    app = Flask(import_name, static_folder=None)  # pages and their files are blueprints
    app.config.from_mapping(load_config(settings, overrides=config))
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_UPLOAD_MB"]) * 1024 * 1024
    app.json.sort_keys = False
    register_error_handlers(app)
    # Under the production server the admission was made before the workers were forked
    # (shared by all of them); a lone process (flask run, tests) makes its own.
    app.extensions["admission"] = SHARED_ADMISSION.get(import_name) or Admission(
        slots=1, queue=int(app.config["QUEUE"]), deadline=float(app.config["REQUEST_DEADLINE"]))
    metrics = Metrics(import_name.split(".")[0])
    metrics.init_app(app)
    app.extensions["metrics"] = metrics
    auth.init_app(app)
    _read_bodies_as_sent(app)
    app.register_blueprint(blueprint(title, description, [*operations, *COMMON_OPERATIONS]))
    return app


def serving_facts(app: Flask) -> dict:
    """What ``/health`` says about how this service serves (clients size their load by it)."""
    workers = app.config.get("WORKERS")
    return {"workers": workers if isinstance(workers, int) else 1,
            "admission": app.extensions["admission"].describe(),
            "api_keys": app.extensions.get("api_keys", False),
            "rate_limit": app.extensions.get("rate_limit")}


def _looks_binary(head: bytes) -> bool:
    """Whether these first bytes of a body are not URL-encoded form text (which is
    printable ASCII): an image, ``.npy`` or video file always is."""
    return any(byte >= 0x80 or (byte < 0x20 and byte not in b"\t\r\n") for byte in head)


def _read_bodies_as_sent(app: Flask) -> None:
    """Two request-body hooks every endpoint needs.

    - ``curl --data-binary @photo.jpg`` (the raw-body upload the API documents) labels the
      bytes ``application/x-www-form-urlencoded``, curl's default; parsed as a form they
      would vanish. A body that is not form text is taken as the raw upload.
    - A request refused before its body was read (a bad query parameter) has the rest of
      the body read before the answer goes out, so the client is not cut off mid-upload and
      its kept-alive connection stays usable; a body over the size limit is not read, and
      the connection is closed instead.
    """

    app.wsgi_app = _RawBodyLabelledAsForm(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])

    @app.after_request
    def _finish_reading_the_body(response):
        if response.status_code >= 400:
            if response.status_code == 413:
                response.headers["Connection"] = "close"
            else:
                try:
                    request.get_data(cache=False)
                except Exception:  # a broken upload: nothing more to read, close instead
                    response.headers["Connection"] = "close"
        return response


class _RawBodyLabelledAsForm:
    """WSGI middleware: a ``application/x-www-form-urlencoded`` body (curl's default label
    for ``--data-binary``) that is not form text is relabelled ``application/octet-stream``
    before Flask parses it. Bodies over ``limit`` bytes are left alone (Flask answers 413)."""

    def __init__(self, wsgi_app, limit: int):
        self.wsgi_app, self.limit = wsgi_app, limit

    def __call__(self, environ, start_response):
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if content_type == "application/x-www-form-urlencoded" and 0 < length <= self.limit:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            if _looks_binary(body[:64]):
                environ["CONTENT_TYPE"] = "application/octet-stream"
        return self.wsgi_app(environ, start_response)
