"""Service configuration: documented defaults, then environment variables, then CLI flags,
then the mapping given to ``create_app(config)`` (tests use that)."""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, fields
from typing import Any, Callable

from core.trimap import TrimapParams


@dataclass(frozen=True)
class Setting:
    key: str           # Flask config key, e.g. "BACKEND"
    env: str           # environment variable, e.g. "SEGMENTATION_BACKEND"
    default: Any
    help: str
    type: Callable = str

    @property
    def flag(self) -> str:
        return "--" + self.key.lower().replace("_", "-")


COMMON_SETTINGS = [
    Setting("HOST", "HOST", "127.0.0.1", "address to listen on"),
    Setting("MAX_PIXELS", "MAX_PIXELS", 40_000_000, "largest image accepted, in pixels", int),
    Setting("MAX_UPLOAD_MB", "MAX_UPLOAD_MB", 150, "largest request body, in MB "
            "(the JSON API needs ~25 MB for a 1080p photo)", int),
    Setting("DEVICE", "DEVICE", "auto", "torch device for model backends: auto, cpu, cuda"),
    Setting("MODELS_DIR", "MODELS_DIR", "", "folder with weight files (default: models/)"),
    Setting("LOG_LEVEL", "LOG_LEVEL", "INFO", "logging level"),
]

TRIMAP_SETTINGS = [
    Setting("TRIMAP_" + f.name.upper(), "TRIMAP_" + f.name.upper(), f.default,
            f"trimap default: {f.name}", type(f.default))
    for f in fields(TrimapParams)
]


def load_config(settings: list[Setting], overrides: dict | None = None,
                args: argparse.Namespace | None = None) -> dict:
    """Resolve every setting: default < environment < CLI flag < ``overrides``."""
    config = {}
    for s in settings:
        value = s.default
        if os.environ.get(s.env, "") != "":
            value = s.type(os.environ[s.env])
        cli = getattr(args, s.key.lower(), None) if args is not None else None
        if cli is not None:
            value = s.type(cli)
        config[s.key] = value
    config.update(overrides or {})
    return config


def trimap_defaults(config: dict) -> TrimapParams:
    """The service's default :class:`TrimapParams` from its ``TRIMAP_*`` settings."""
    changed = {f.name: config["TRIMAP_" + f.name.upper()] for f in fields(TrimapParams)
               if config.get("TRIMAP_" + f.name.upper(), f.default) != f.default}
    return TrimapParams.from_mapping(changed)


def build_parser(description: str, settings: list[Setting]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    for s in settings:
        parser.add_argument(s.flag, dest=s.key.lower(), default=None,
                            help=f"{s.help} (env {s.env}, default {s.default!r})")
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_from_cli(description: str, settings: list[Setting], create_app, argv=None) -> None:
    """``python -m <service>``: parse flags, build the app, serve (threaded dev server)."""
    args = build_parser(description, settings).parse_args(argv)
    config = load_config(settings, args=args)
    configure_logging(config["LOG_LEVEL"])
    app = create_app(config)
    # Threaded: a slow request does not block /health; models guard themselves with locks.
    app.run(host=config["HOST"], port=int(config["PORT"]), threaded=True)


def app_for_flask_run(package: str):
    """The app ``flask run`` serves from a service folder (configuration from the environment)."""
    import importlib

    configure_logging(load_config(COMMON_SETTINGS)["LOG_LEVEL"])
    return importlib.import_module(package).create_app()
