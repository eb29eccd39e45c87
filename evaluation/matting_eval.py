"""Matting stage alone: the trimap is given (alphamatting set, ``trimap1`` and ``trimap2``).

Scores every registered matting backend that can run here (closed-form twice: solved at
full resolution, ``max_unknown=0``, and with its default ``max_unknown``) through
:func:`core.pipeline.matte_with_trimap`, exactly as the services call it, and pymatting's
other solvers as references. Reference mattes do not depend on our code, so they are
cached under ``<out>/cache/`` (keyed by pymatting's version) and reused by later runs.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from core.matters import MATTERS, create_matter
from core.pipeline import matte_with_trimap
from core.registry import BackendUnavailable
from evaluation.datasets import TRIMAPS, Sample
from evaluation.metrics import matting_errors

log = logging.getLogger(__name__)

REFERENCES = ("knn", "lkm", "rw", "sm")
REFERENCE_NOTES = {
    "knn": "pymatting estimate_alpha_knn (KNN matting, Chen et al. 2013)",
    "lkm": "pymatting estimate_alpha_lkm (large-kernel matting, He et al. 2010)",
    "rw": "pymatting estimate_alpha_rw (random-walk matting, Grady et al. 2005)",
    "sm": "pymatting estimate_alpha_sm (shared matting, Gastal & Oliveira 2010)",
}


@dataclass
class Method:
    label: str
    kind: str                                    # "backend" or "reference"
    solve: Callable[[np.ndarray, np.ndarray], np.ndarray]   # (uint8 RGB, trimap) -> alpha
    note: str = ""


def _quiet(fn, *args, **kwargs):
    """Run ``fn`` with stdout captured: pymatting prints solver warnings with ``print``."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


# Faster closed-form settings scored in full mode (benchmarks/bench_pipeline.py times them):
# a looser CG tolerance (alpha needs ~1/255, not 1e-7) and a smaller solve.
CLOSED_FORM_FAST = {"tolerance": 1e-4, "max_unknown": 25_000}


def backend_methods(names: list[str] | None = None,
                    extra: bool = False) -> tuple[list[Method], dict[str, str]]:
    """Matting backends that can run here, and ``{name: why}`` for those that cannot.

    Closed-form runs at full resolution (``max_unknown=0``) and with its defaults, and with
    ``extra`` also with :data:`CLOSED_FORM_FAST`.
    """
    methods, skipped = [], {}
    for name in names or list(MATTERS):
        variants = [({"max_unknown": 0}, "closed-form, full resolution"), ({}, None)] \
            if name == "closed-form" else [({}, None)]
        if name == "closed-form" and extra:
            variants.append((CLOSED_FORM_FAST, "closed-form, " + ", ".join(
                f"{k}={v:g}" for k, v in CLOSED_FORM_FAST.items())))
        for options, label in variants:
            try:
                matter = create_matter(name, **options)
            except BackendUnavailable as exc:
                skipped[name] = str(exc)
                break
            described = matter.describe()
            label = label or (f"{name} (default)" if name == "closed-form" else name)

            def solve(image, trimap, matter=matter):
                return _quiet(matte_with_trimap, image, trimap, matter).alpha

            methods.append(Method(label, "backend", solve, f"core backend {described}"))
    return methods, skipped


def reference_methods(names=REFERENCES) -> list[Method]:
    import pymatting

    methods = []
    for name in names:
        if name not in REFERENCE_NOTES:
            raise ValueError(f"unknown reference solver {name!r}; choose from {REFERENCES}")
        fn = getattr(pymatting, f"estimate_alpha_{name}")

        def solve(image, trimap, fn=fn):
            alpha = _quiet(fn, image.astype(np.float64) / 255.0, trimap.astype(np.float64) / 255.0)
            alpha = np.clip(alpha, 0.0, 1.0).astype(np.float32)
            alpha[trimap == 255] = 1.0
            alpha[trimap == 0] = 0.0
            return alpha

        methods.append(Method(f"pymatting {name}", "reference", solve, REFERENCE_NOTES[name]))
    return methods


def _warm_up(method: Method, size: int = 64) -> None:
    """One tiny solve so numba's JIT compilation is not charged to the first image
    (64 px: LKM's default radius-10 box filter needs more than 40)."""
    image = np.zeros((size, size, 3), np.uint8)
    q = size // 4
    image[q:3 * q, q:3 * q] = 255
    image[:, :, 1] = np.linspace(0, 200, size, dtype=np.uint8)[None, :]
    trimap = np.zeros((size, size), np.uint8)
    trimap[q - 4:3 * q + 4, q - 4:3 * q + 4] = 128
    trimap[q + 4:3 * q - 4, q + 4:3 * q - 4] = 255
    method.solve(image, trimap)


class ReferenceCache:
    """16-bit PNG alphas + solve seconds of reference solvers, per pymatting version."""

    def __init__(self, root: Path | None):
        import pymatting

        self.root = None if root is None else Path(root) / f"pymatting-{pymatting.__version__}"

    def _paths(self, method: Method, sample: Sample, trimap_name: str):
        folder = self.root / method.label.replace(" ", "_") / trimap_name
        return folder / f"{sample.name}.png", folder / f"{sample.name}.json"

    def get(self, method, sample, trimap_name):
        if self.root is None or method.kind != "reference":
            return None
        png, meta = self._paths(method, sample, trimap_name)
        if not (png.is_file() and meta.is_file()):
            return None
        alpha = np.asarray(Image.open(png), dtype=np.float32) / 65535.0
        return alpha, json.loads(meta.read_text())["seconds"]

    def put(self, method, sample, trimap_name, alpha, seconds):
        if self.root is None or method.kind != "reference":
            return
        png, meta = self._paths(method, sample, trimap_name)
        png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(alpha * 65535.0 + 0.5, 0, 65535).astype(np.uint16)).save(png)
        meta.write_text(json.dumps({"seconds": seconds, "load_average": os.getloadavg()[0],
                                    "date": time.strftime("%Y-%m-%d %H:%M")}))


def evaluate_matting(samples: list[Sample], methods: list[Method], cache: ReferenceCache,
                     progress: Callable[[str], None] = print, keep_alpha: set | None = None):
    """Score every method on every sample and trimap.

    Returns:
        ``(rows, alphas)``: one dict per (image, trimap, method) with ``sad``, ``mse``,
        ``grad``, ``seconds``, ``unknown`` (pixel count) and ``cached``; and the alphas of
        the ``(image, trimap)`` pairs named in ``keep_alpha`` (for the example figure).
    """
    rows, alphas = [], {}
    for method in methods:
        warmed = False
        for sample in samples:
            for trimap_name in TRIMAPS:
                trimap = sample.trimap(trimap_name)
                hit = cache.get(method, sample, trimap_name)
                if hit is None:
                    if not warmed:
                        _warm_up(method)
                        warmed = True
                    started = time.perf_counter()
                    alpha = method.solve(sample.image, trimap)
                    seconds = time.perf_counter() - started
                    cache.put(method, sample, trimap_name, alpha, seconds)
                else:
                    alpha, seconds = hit
                scores = matting_errors(alpha, sample.truth, trimap)
                rows.append({"image": sample.name, "trimap": trimap_name, "method": method.label,
                             "kind": method.kind, **scores, "seconds": seconds,
                             "unknown": int(np.count_nonzero(trimap == 128)),
                             "cached": hit is not None})
                if keep_alpha and (sample.name, trimap_name) in keep_alpha:
                    alphas[(sample.name, trimap_name, method.label)] = alpha
                progress(f"  matting {method.label:<40} {sample.name} {trimap_name}: "
                         f"SAD {scores['sad']:6.2f}  MSE {scores['mse']:6.2f}  "
                         f"{seconds:6.2f} s{' (cached)' if hit is not None else ''}")
        for sample in samples:
            sample.release()
    return rows, alphas
