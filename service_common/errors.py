"""Errors as JSON, and a request id on every response.

- What the caller got wrong (:class:`core.errors.UserError` and its subclasses, Werkzeug's
  ``HTTPException`` such as 404, 405 or 413) is a 4xx with
  ``{"error": message, "code": ..., "request_id": ...}``.
- A backend that cannot run (:class:`core.errors.BackendUnavailable`) or a service we
  depend on being down (:class:`ServiceUnavailable`) is a 503.
- Anything else is a bug: its traceback goes to the log with the request id, and the
  answer is a 500 whose body carries that id for the user to quote. A plain ``ValueError``
  from deep inside a backend is one of those, never the caller's fault.

Nothing a request sends may take the process down: the next request is served as usual.
"""
from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from core.errors import BackendUnavailable, TooManyPixels, UserError

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's own id is kept when it is a sane token (it then ties their logs to ours).
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class APIError(UserError):
    """A caller's mistake found in the HTTP layer (a missing field, a bad header)."""


class ServiceUnavailable(Exception):
    """Something this service depends on is down or refused us (e.g. segmentation); a 503,
    with ``Retry-After`` when ``retry_after`` seconds are known."""

    def __init__(self, message: str, code: str = "service_unavailable",
                 retry_after: int | None = None):
        super().__init__(message)
        self.message, self.code, self.retry_after = message, code, retry_after


def request_id() -> str:
    """This request's id (made on first use; taken from the caller's header when sane)."""
    if "request_id" not in g:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
    return g.request_id


def error_response(status: int, message: str, code: str, **extra):
    response = jsonify({"error": message, "code": code, "request_id": request_id(), **extra})
    response.status_code = status
    return response




def register_error_handlers(app: Flask) -> None:
    """Map exceptions onto JSON responses and tag every response with its request id."""

    @app.before_request
    def _tag_request():
        request_id()

    @app.after_request
    def _tag_response(response):
        response.headers[REQUEST_ID_HEADER] = request_id()
        return response

    @app.errorhandler(UserError)
    def _user_error(exc: UserError):
        return error_response(exc.status, exc.message, exc.code, **exc.extra)

    @app.errorhandler(TooManyPixels)
    def _too_many_pixels(exc: TooManyPixels):
        # The core's message has the size and the limit; here, which setting holds it.
        message = exc.message
        if not exc.decoder_limit:
            limit = app.config.get("MAX_PIXELS")
            message += (f"; send a smaller image, or raise the service's limit (MAX_PIXELS="
                        f"{limit} / --max-pixels)")
        return error_response(exc.status, message, exc.code, **exc.extra)

    @app.errorhandler(BackendUnavailable)
    def _unavailable(exc: BackendUnavailable):
        return error_response(503, str(exc), "backend_unavailable")

    @app.errorhandler(ServiceUnavailable)
    def _service_unavailable(exc: ServiceUnavailable):
        response = error_response(503, exc.message, exc.code)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        # Werkzeug's own text says neither the limit nor how to raise it.
        limit = app.config.get("MAX_UPLOAD_MB")
        return error_response(413, f"request body larger than MAX_UPLOAD_MB={limit} MB; send a "
                              "smaller file or raise the service's limit (--max-upload-mb / "
                              "MAX_UPLOAD_MB)", "request_too_large", limit_mb=limit)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return error_response(exc.code or 500, exc.description or exc.name,
                              exc.name.lower().replace(" ", "_"))

    @app.errorhandler(MemoryError)
    def _memory(exc: MemoryError):
        log.error("out of memory serving request %s (%s %s)", request_id(), request.method,
                  request.path)
        return error_response(507, "not enough memory for this image; send a smaller one",
                              "insufficient_memory")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("internal error in request %s (%s %s)", request_id(), request.method,
                      request.path)
        return error_response(500, f"internal error ({type(exc).__name__}); quote request id "
                              f"{request_id()} when reporting it", "internal_error")
