"""Errors as JSON: every failure a client can cause is a 4xx with ``{"error": ..., "code": ...}``.

Nothing a request sends may crash the process: unexpected exceptions become a logged 500
with a JSON body, and the next request is served as usual.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from core.images import ImageError
from core.registry import BackendUnavailable

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error with an HTTP status, a stable machine-readable ``code`` and a message."""

    def __init__(self, status: int, message: str, code: str = "bad_request", **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


def error_response(status: int, message: str, code: str, **extra):
    response = jsonify({"error": message, "code": code, **extra})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Map our exceptions (and Werkzeug's) onto JSON responses."""

    @app.errorhandler(APIError)
    def _api_error(exc: APIError):
        return error_response(exc.status, exc.message, exc.code, **exc.extra)

    @app.errorhandler(ImageError)
    def _image_error(exc: ImageError):
        return error_response(400, str(exc), "invalid_image")

    @app.errorhandler(ValueError)
    def _value_error(exc: ValueError):
        return error_response(400, str(exc), "invalid_parameter")

    @app.errorhandler(BackendUnavailable)
    def _unavailable(exc: BackendUnavailable):
        return error_response(503, str(exc), "backend_unavailable")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = exc.name.lower().replace(" ", "_")
        if exc.code == 413:  # Werkzeug's text says neither the limit nor how to raise it
            limit = app.config.get("MAX_UPLOAD_MB")
            return error_response(
                413, f"request body larger than MAX_UPLOAD_MB={limit} MB; send a smaller file "
                     f"or raise the service's limit (--max-upload-mb / MAX_UPLOAD_MB)",
                code, limit_mb=limit)
        return error_response(exc.code or 500, exc.description or exc.name, code)

    @app.errorhandler(MemoryError)
    def _memory(exc: MemoryError):
        log.error("out of memory serving a request")
        return error_response(507, "not enough memory for this image; send a smaller one",
                              "insufficient_memory")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(500, f"internal error: {type(exc).__name__}", "internal_error")
