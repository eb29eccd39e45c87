"""Service configuration: documented defaults, then environment variables, then CLI flags,
then the mapping given to ``create_app(config)`` (tests use that).

Every setting is declared once (:class:`Setting`). At start-up the configuration is
checked: a ``create_app`` key or an environment variable that looks like one of ours
(``SEGMENTATION_*``, ``TRIMAP_*``, ``FBA_*``...) but is no known setting fails, naming the
valid ones, so a typo never silently does nothing.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from core.errors import ConfigError
from core.trimap import TrimapParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    """One setting: its Flask config key, environment variable, default, help and type.
    ``backend`` / ``option``: the backend keyword option it feeds (``None`` for the service's
    own settings)."""

    key: str           # Flask config key, e.g. "BACKEND"
    env: str           # environment variable, e.g. "SEGMENTATION_BACKEND"
    default: Any
    help: str
    type: Callable = str
    backend: str | None = None
    option: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.key.lower().replace("_", "-")

    def parse(self, raw) -> Any:
        """``raw`` (a string from the environment or a flag) as this setting's type.

        Raises:
            ConfigError: it does not parse.
        """
        if raw is None or not isinstance(raw, str):
            return raw
        try:
            return self.type(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.env} / {self.flag}: cannot read {raw!r} "
                              f"({self.help})") from None


# Environment variables with these prefixes are ours: an unknown one is a typo.
OUR_PREFIXES = ("SEGMENTATION_", "MATTING_", "TRIMAP_", "MEDIAPIPE_", "MASKRCNN_", "FBA_",
                "CLOSED_FORM_", "JOBS_")
# Keys create_app(config) takes besides settings: ready objects (tests, notebooks).
EXTRA_KEYS = {"SEGMENTER", "MATTER", "TESTING"}


def _check_environment(known_envs: set[str]) -> None:
    for name in sorted(os.environ):
        if name.startswith(OUR_PREFIXES) and name not in known_envs:
            close = difflib.get_close_matches(name, sorted(known_envs), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown setting {name} in the environment{hint} "
                              f"Known: {sorted(e for e in known_envs if e.startswith(OUR_PREFIXES))}")


def load_config(settings: list[Setting], overrides: dict | None = None,
                args: argparse.Namespace | None = None) -> dict:
    """Resolve every setting: default < environment < CLI flag < ``overrides``.

    ``overrides`` may also hold objects the app factory takes as they are (upper-case keys
    listed in ``extras``, e.g. a ready backend in tests).

    Raises:
        ConfigError: an unknown key in ``overrides`` or an unknown variable with one of our
            prefixes in the environment (the message names the valid ones), or a value that
            does not parse.
    """
    from service_common.settings import ALL_ENVIRONMENT

    _check_environment(ALL_ENVIRONMENT)
    keys = {s.key for s in settings}
    unknown = sorted(set(overrides or {}) - keys - EXTRA_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}; valid: {sorted(keys)}")
    config = {}
    for s in settings:
        value = s.default
        if os.environ.get(s.env, "") != "":
            value = s.parse(os.environ[s.env])
        cli = getattr(args, s.key.lower(), None) if args is not None else None
        if cli is not None:
            value = s.parse(cli)
        config[s.key] = value
    for key, value in (overrides or {}).items():
        setting = next((s for s in settings if s.key == key), None)
        config[key] = setting.parse(value) if setting is not None else value
    return config


def trimap_config(config: dict) -> dict[str, Any]:
    """The trimap fields the service's ``TRIMAP_*`` settings set (unset ones left out)."""
    return {name: config["TRIMAP_" + name.upper()] for name in TrimapParams.names()
            if config.get("TRIMAP_" + name.upper()) is not None}


def backend_options(settings: list[Setting], config: dict) -> dict[str, dict[str, Any]]:
    """``{backend: {option: value}}`` from the settings that feed backend options; a
    setting left at ``None`` is left out (the backend's own default applies)."""
    options: dict[str, dict[str, Any]] = {}
    for s in settings:
        if s.backend is None:
            continue
        for backend in s.backend.split(","):
            value = config[s.key]
            if value is not None and value != "":
                options.setdefault(backend, {})[s.option] = value
    return options


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
    """``python -m <service>``: parse flags, check the configuration, serve it under the
    production server (:func:`service_common.server.serve`: gunicorn, workers sized to the
    cores). ``flask run`` in a service's folder stays the development server."""
    from service_common.server import serve

    args = build_parser(description, settings).parse_args(argv)
    config = load_config(settings, args=args)
    configure_logging(config["LOG_LEVEL"])
    serve(create_app, config)


def app_for_flask_run(package: str):
    """The app ``flask run`` serves from a service folder (configuration from the environment)."""
    import importlib

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    return importlib.import_module(package).create_app()
