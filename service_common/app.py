"""The part of both app factories that is the same."""
from __future__ import annotations

from flask import Flask

from core.runtime import reuse_freed_memory
from service_common.config import Setting, load_config
from service_common.errors import register_error_handlers


def new_app(import_name: str, settings: list[Setting], config: dict | None) -> Flask:
    """A Flask app configured from ``settings`` (defaults < environment < ``config``),
    with the request-size limit and JSON error handlers in place."""
    # Every request allocates image-sized arrays; let glibc reuse them rather than mmap
    # fresh pages each time (see core.runtime).
    reuse_freed_memory()
    app = Flask(import_name)
    app.config.from_mapping(load_config(settings, overrides=config))
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_UPLOAD_MB"]) * 1024 * 1024
    app.json.sort_keys = False
    register_error_handlers(app)
    return app
