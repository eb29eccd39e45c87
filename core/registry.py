"""A tiny registry of lazily imported backends, shared by segmenters and matters.

Backends are named ``"module:Class"`` strings so that choosing ``mediapipe`` never
imports torch, and a new backend is one file plus one line in a registry dict.

Options are explicit: each backend's ``__init__`` names the keyword options it takes, and
:func:`create_backend` refuses any other (naming the valid ones) before anything is built,
so a typo in a setting fails at start-up instead of silently doing nothing.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import threading
from collections.abc import Mapping
from typing import Any

from core.errors import BackendUnavailable, ConfigError

log = logging.getLogger(__name__)

__all__ = ["Backend", "BackendUnavailable", "ModelCache", "create_backend", "load_class",
           "option_names"]


class ModelCache:
    """Models loaded once per process and shared by every backend instance asking for the
    same key (weights file, device, configuration): a service's requests and a notebook's
    backends then hold one copy of the weights."""

    def __init__(self):
        self._models: dict = {}
        self._lock = threading.Lock()

    def get(self, key, load):
        """The model for ``key``, made with ``load()`` the first time (under a lock, so two
        threads never load the same one twice)."""
        with self._lock:
            if key not in self._models:
                self._models[key] = load()
            return self._models[key]

    def clear(self) -> None:
        """Forget every model, so its memory can be freed once no backend holds it (for
        tools that load one setting after another and measure memory)."""
        with self._lock:
            self._models.clear()


class Backend:
    """What every model backend has: a registry :attr:`name`, a check that it can run here,
    and facts for ``/health`` and logs. Segmenters and matters derive from it."""

    name = "base"
    licence = ""  # the terms of the backend's models, shown in /health and the docs

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """Whether this backend can run here, and a short reason for the log. Subclasses
        may take any of their constructor's options (the registry passes those)."""
        return True, "embedded"

    def describe(self) -> dict:
        """Facts for ``/health`` and logs."""
        return {"name": self.name, "licence": self.licence}


def load_class(spec: str):
    """The class behind a ``"module:Class"`` registry entry (imports the module)."""
    module_name, class_name = spec.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def option_names(callable_) -> tuple[str, ...]:
    """The keyword options a backend's ``__init__`` (or ``is_available``) declares."""
    parameters = inspect.signature(callable_).parameters.values()
    return tuple(p.name for p in parameters
                 if p.name not in ("self", "cls")
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _check_options(kind: str, name: str, cls, options: Mapping[str, Any]) -> None:
    valid = option_names(cls.__init__)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"{kind} backend {name!r} has no option(s) {unknown}; "
                          f"its options are {list(valid)}")


def _build(kind: str, name: str, cls, options: Mapping[str, Any]):
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{kind} backend {name!r}: {exc}") from exc


def _available(cls, options: Mapping[str, Any]) -> tuple[bool, str]:
    accepted = option_names(cls.is_available)
    return cls.is_available(**{k: v for k, v in options.items() if k in accepted})


def create_backend(kind: str, registry: Mapping[str, str], name: str,
                   per_backend: Mapping[str, Mapping[str, Any]] | None = None, **options):
    """Instantiate backend ``name`` from ``registry``; ``auto`` takes the first whose
    ``is_available`` says yes, in registry order, and logs which it chose and why.

    Args:
        kind: ``"segmentation"`` or ``"matting"`` (for messages).
        registry: backend name -> ``"module:Class"``.
        name: a registry name or ``"auto"``.
        per_backend: options keyed by backend name (a service's settings for each
            backend); every entry is checked, chosen or not, so a typo fails now.
        options: options for the named backend (not allowed with ``auto``: say which
            backend they are for through ``per_backend``).
    Raises:
        ConfigError: unknown name, unknown option, or an option value the backend refuses.
        BackendUnavailable: the named backend cannot run here (the message says why).
    """
    per_backend = {k: dict(v) for k, v in (per_backend or {}).items()}
    unknown_backends = sorted(set(per_backend) - set(registry))
    if unknown_backends:
        raise ConfigError(f"options given for unknown {kind} backend(s) {unknown_backends}; "
                          f"backends: {list(registry)}")
    if name != "auto" and name not in registry:
        raise ConfigError(f"unknown {kind} backend {name!r}; choose one of {['auto', *registry]}")
    if options:
        if name == "auto":
            raise ConfigError(f"{kind} options {sorted(options)} given with backend 'auto': "
                              "name the backend they are for")
        per_backend[name] = {**per_backend.get(name, {}), **options}
    for backend, opts in per_backend.items():
        _check_options(kind, backend, load_class(registry[backend]), opts)

    if name == "auto":
        reasons = []
        for candidate, spec in registry.items():
            cls = load_class(spec)
            ok, why = _available(cls, per_backend.get(candidate, {}))
            if ok:
                log.info("%s backend 'auto' -> %r (%s)", kind, candidate, why)
                return _build(kind, candidate, cls, per_backend.get(candidate, {}))
            reasons.append(f"{candidate}: {why}")
        raise BackendUnavailable(f"no {kind} backend can run: " + "; ".join(reasons))
    cls = load_class(registry[name])
    ok, why = _available(cls, per_backend.get(name, {}))
    if not ok:
        raise BackendUnavailable(f"{kind} backend {name!r} cannot run: {why}")
    log.info("%s backend %r (%s)", kind, name, why)
    return _build(kind, name, cls, per_backend.get(name, {}))
