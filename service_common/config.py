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
import sys
from dataclasses import dataclass
from typing import Any, Callable

from core.errors import BackendUnavailable, ConfigError
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
        except (TypeError, ValueError) as exc:
            # Our own types say what is wrong; int()'s and float()'s words are Python's.
            why = {int: "not a whole number", float: "not a number"}.get(self.type, str(exc))
            raise ConfigError(f"{self.env} / {self.flag}: cannot use {raw!r}: {why} "
                              f"({self.help})") from None


# Types of settings whose values have bounds: a ValueError's text says what is wrong.
def _whole(raw) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError("not a whole number") from None


def port(raw) -> int:
    """A TCP port number (0: any free one)."""
    value = _whole(raw)
    if not 0 <= value <= 65535:
        raise ValueError("a port lies in 0..65535")
    return value


def positive_int(raw) -> int:
    value = _whole(raw)
    if value < 1:
        raise ValueError("must be 1 or more")
    return value


def non_negative_int(raw) -> int:
    value = _whole(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def positive_float(raw) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError("not a number") from None
    if not 0 < value < float("inf"):  # also refuses nan
        raise ValueError("must be more than 0")
    return value


def auto_or_count(raw) -> str | int:
    """``auto`` or a whole number of 1 or more (workers, threads)."""
    if str(raw).strip().lower() == "auto":
        return "auto"
    try:
        return positive_int(raw)
    except ValueError:
        raise ValueError("use 'auto' or a whole number of 1 or more") from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(raw) -> str:
    """A logging level name (any case), as the upper-case name."""
    name = str(raw).strip().upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"use one of {', '.join(LOG_LEVELS)}")
    return name


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
            # The known ones of the same family (MATTING_*...): all of them would be a
            # screenful; --help lists every setting with its variable.
            prefix = next(p for p in OUR_PREFIXES if name.startswith(p))
            family = sorted(e for e in known_envs if e.startswith(prefix))
            raise ConfigError(f"unknown setting {name} in the environment{hint} "
                              f"(known {prefix}* settings: {', '.join(family)}; --help lists "
                              "them all)")


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


def build_parser(description: str, settings: list[Setting],
                 prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for s in settings:
        parser.add_argument(s.flag, dest=s.key.lower(), default=None,
                            help=f"{s.help} (env {s.env}, default {s.default!r})")
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def program_name(package: str) -> str:
    """How the user started us: ``python -m segmentation_api`` or the console script's name
    (argparse would say ``__main__.py``)."""
    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return f"python -m {package}" if called in ("", "__main__.py", "-m", "-c") else called


# Exit status of a configuration mistake, as argparse's for a bad flag (a usage error).
USAGE_ERROR = 2


def exit_on_config_error(prog: str, exc: BaseException, log_level_name: str = "INFO"):
    """Print ``exc`` as one line (``PROG: error: ...``) on stderr and exit with
    :data:`USAGE_ERROR`; the traceback goes to the log at debug level only. A traceback of
    the start-up check's process (:func:`service_common.server.check_app`) comes along as
    ``exc.child_traceback``."""
    configure_logging(log_level_name)  # no-op when logging is set up already
    log.debug("start-up failed", exc_info=exc)
    if getattr(exc, "child_traceback", None):
        log.debug("the start-up check's traceback:\n%s", exc.child_traceback)
    print(f"{prog}: error: {exc}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def _wanted_log_level(args: argparse.Namespace) -> str:
    """The log level asked for, even when the configuration does not load (for the
    traceback of that failure at debug level); INFO when it is no level."""
    for raw in (getattr(args, "log_level", None), os.environ.get("LOG_LEVEL")):
        if raw:
            try:
                return log_level(raw)
            except ValueError:
                return "INFO"
    return "INFO"


def run_from_cli(description: str, settings: list[Setting], create_app, argv=None) -> None:
    """``python -m <service>``: parse flags, check the configuration, serve it under the
    production server (:func:`service_common.server.serve`: gunicorn, workers sized to the
    cores). ``flask run`` in a service's folder stays the development server.

    A configuration mistake (an unknown or mistyped setting, a value out of range, an
    unknown backend or option, a backend that cannot run here) is found before gunicorn
    starts: one line on stderr naming it, and exit status 2 (traceback at debug level)."""
    from service_common.server import serve

    prog = program_name(create_app.__module__.split(".")[0])
    args = build_parser(description, settings, prog).parse_args(argv)
    level = _wanted_log_level(args)
    try:
        config = load_config(settings, args=args)
        level = config["LOG_LEVEL"]
        configure_logging(level)
        serve(create_app, config)
    except (ConfigError, BackendUnavailable) as exc:
        exit_on_config_error(prog, exc, level)
    except KeyboardInterrupt:  # Ctrl-C before gunicorn took over the signals
        sys.exit(130)


def app_for_flask_run(package: str):
    """The app ``flask run`` serves from a service folder (configuration from the environment)."""
    import importlib

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    return importlib.import_module(package).create_app()
