"""Optional API keys and an optional rate limit per key.

Keys come from ``API_KEYS`` (comma-separated) and/or ``API_KEYS_FILE`` (one per line, ``#``
comments); with none, the service is open. A request shows its key as
``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; keys are compared in constant time. A
missing or wrong key is a 401 JSON answer. ``/health``, ``/metrics``, the API description
(``/openapi.json``, ``/docs``) and the web page stay open.

``RATE_LIMIT`` (e.g. ``60/minute``, Flask-Limiter's syntax) limits each key (each address
when keys are off); over it the answer is 429 with ``Retry-After``. The counts live in
memory by default, per worker process; ``RATE_LIMIT_STORAGE=redis://...`` shares them.
"""
from __future__ import annotations

import hmac
from pathlib import Path

from flask import Flask, request

from core.errors import ConfigError, UserError

OPEN_ENDPOINTS = {"static", "health", "metrics_endpoint", "openapi", "docs"}
OPEN_PREFIXES = ("web.",)  # the web page asks for the key itself


class Unauthorized(UserError):
    status = 401
    code = "unauthorized"


def load_keys(config: dict) -> list[bytes]:
    """The configured keys (empty: keys are off).

    Raises:
        ConfigError: ``API_KEYS_FILE`` set but unreadable.
    """
    keys = [k.strip() for k in str(config.get("API_KEYS") or "").split(",") if k.strip()]
    path = config.get("API_KEYS_FILE")
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"API_KEYS_FILE {path}: {exc}") from None
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [k.encode() for k in keys]


def presented_key() -> str | None:
    """The key a request shows, if any."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-API-Key") or None


def _is_open() -> bool:
    endpoint = request.endpoint or ""
    name = endpoint.rsplit(".", 1)[-1]
    return name in OPEN_ENDPOINTS or endpoint.startswith(OPEN_PREFIXES)


def init_app(app: Flask) -> None:
    """Install key checking and the rate limit when configured."""
    keys = load_keys(app.config)
    app.extensions["api_keys"] = bool(keys)
    if keys:
        @app.before_request
        def _check_key():
            if request.endpoint is None or _is_open():
                return None
            given = presented_key()
            if given is None:
                raise Unauthorized("this service needs an API key: send it as "
                                   "'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
            encoded = given.encode()
            # Compare with every key, in constant time, so timing tells nothing.
            if not any([hmac.compare_digest(encoded, key) for key in keys]):  # noqa: C419
                raise Unauthorized("the API key is not valid")
            return None

    limit = app.config.get("RATE_LIMIT")
    if limit:
        from flask_limiter import Limiter

        def limit_key() -> str:
            return presented_key() or request.remote_addr or "unknown"

        limiter = Limiter(limit_key, app=app, default_limits=[limit], headers_enabled=True,
                          storage_uri=app.config.get("RATE_LIMIT_STORAGE") or "memory://")
        limiter.request_filter(_is_open)
        app.extensions["rate_limit"] = limit
