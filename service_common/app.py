"""The part of both app factories that is the same."""
from __future__ import annotations

from flask import Flask

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
    app.register_blueprint(blueprint(title, description, [*operations, *COMMON_OPERATIONS]))
    return app


def serving_facts(app: Flask) -> dict:
    """What ``/health`` says about how this service serves (clients size their load by it)."""
    workers = app.config.get("WORKERS")
    return {"workers": workers if isinstance(workers, int) else 1,
            "admission": app.extensions["admission"].describe(),
            "api_keys": app.extensions.get("api_keys", False),
            "rate_limit": app.extensions.get("rate_limit")}
