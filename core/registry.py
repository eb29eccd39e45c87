"""A tiny registry of lazily imported backends, shared by segmenters and matters.

Backends are named ``"module:Class"`` strings so that choosing ``mediapipe`` never
imports torch, and a new backend is one file plus one line in a registry dict.
"""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)


class BackendUnavailable(RuntimeError):
    """A backend was asked for explicitly but cannot run here (weights or package missing)."""


def load_class(spec: str):
    module_name, class_name = spec.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_backend(kind: str, registry: dict[str, str], name: str, **options):
    """Instantiate backend ``name`` from ``registry``; ``auto`` takes the first whose
    ``is_available(**options)`` says yes, in registry order, and logs which it chose.

    Raises:
        ValueError: unknown name.
        BackendUnavailable: the named backend cannot run (the message says why).
    """
    if name == "auto":
        reasons = []
        for candidate, spec in registry.items():
            cls = load_class(spec)
            ok, why = cls.is_available(**options)
            if ok:
                log.info("%s backend 'auto' -> %r (%s)", kind, candidate, why)
                return cls(**options)
            reasons.append(f"{candidate}: {why}")
        raise BackendUnavailable(f"no {kind} backend can run: " + "; ".join(reasons))
    if name not in registry:
        raise ValueError(f"unknown {kind} backend {name!r}; choose one of "
                         f"{['auto', *registry]}")
    cls = load_class(registry[name])
    ok, why = cls.is_available(**options)
    if not ok:
        raise BackendUnavailable(f"{kind} backend {name!r} cannot run: {why}")
    log.info("%s backend %r (%s)", kind, name, why)
    return cls(**options)
