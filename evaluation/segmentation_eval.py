"""Person segmentation and the whole pipeline (DAVIS dance-twirl, portraits).

- Segmentation: every registered segmenter (and listed option variants) in this process;
  IoU and boundary F of ``mask > 0.5`` against the true person mask.
- Pipeline: both services as real processes (:func:`evaluation.services.running_services`),
  one pair per segmentation backend that can run here, default matting backend. Each
  image is posted as its original file to ``POST /matte?output=alpha&format=npy`` once
  per trimap variant (the seed's fixed 10 iterations, and bands that scale with the
  person, ``band_scale=...``); IoU and boundary F of ``alpha > 0.5``.
"""
from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import requests

from core.registry import BackendUnavailable, load_class
from core.segmenters import SEGMENTERS, create_segmenter
from evaluation.datasets import Sample
from evaluation.metrics import mask_scores
from service_common.timing import parse_server_timing

log = logging.getLogger(__name__)

# Option variants scored besides each backend's defaults (skipped if a backend rejects them).
SEGMENTER_VARIANTS = {"mediapipe": [{"mode": "fast"}, {"mode": "fast", "model": "landscape"}]}

FIXED_TRIMAP = "fixed (10 iterations)"
DECIDED_TRIMAP = "decided (default)"


def trimap_variants(band_scales) -> dict[str, dict]:
    """``{label: query parameters}``: the seed's fixed band (the original soft trimap,
    given explicitly, whatever the service's defaults become), one soft band per scale,
    and the service's default (the decided trimap: a thin band along each person)."""
    variants = {FIXED_TRIMAP: {"method": "soft", "band_scale": "0", "erode_iterations": "10",
                               "dilate_iterations": "10"}}
    for scale in band_scales:
        variants[f"band_scale={scale:g}"] = {"method": "soft", "band_scale": f"{scale:g}"}
    variants[DECIDED_TRIMAP] = {}
    return variants


def segmenters_here() -> tuple[list[tuple[str, str, dict]], dict[str, str]]:
    """``([(label, name, options)], {name: why skipped})`` for the registered segmenters."""
    runnable, skipped = [], {}
    for name in SEGMENTERS:
        ok, why = load_class(SEGMENTERS[name]).is_available()
        if not ok:
            skipped[name] = why
            continue
        runnable.append((name, name, {}))
        for options in SEGMENTER_VARIANTS.get(name, []):
            label = name + " (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")"
            runnable.append((label, name, options))
    return runnable, skipped


def evaluate_segmenters(samples: list[Sample], progress: Callable[[str], None] = print):
    """Raw mask scores per segmenter variant. Returns ``(rows, skipped)``."""
    variants, skipped = segmenters_here()
    rows = []
    for label, name, options in variants:
        try:
            segmenter = create_segmenter(name, **options)
        except BackendUnavailable as exc:
            skipped[label] = str(exc)
            continue
        except (TypeError, ValueError) as exc:  # a variant this version does not offer
            skipped[label] = f"option not accepted: {exc}"
            continue
        segmenter.segment(samples[0].image)  # first call loads graphs / allocates
        for sample in samples:
            started = time.perf_counter()
            mask = segmenter.segment(sample.image)
            seconds = time.perf_counter() - started
            scores = mask_scores(mask, sample.truth)
            rows.append({"dataset": sample.dataset, "image": sample.name, "segmenter": label,
                         "mask_iou": scores["iou"], "mask_bf": scores["bf"], "seconds": seconds})
        means = _mean_by(rows, "segmenter", label)
        progress(f"  segmentation {label:<28} mask IoU {means['mask_iou']:.3f}  "
                 f"BF {means['mask_bf']:.3f}  ({len(samples)} images)")
        del segmenter
    return rows, skipped


def _mean_by(rows, key, value):
    picked = [r for r in rows if r[key] == value]
    return {k: float(np.mean([r[k] for r in picked])) for k in ("mask_iou", "mask_bf")}


def post_matte(session: requests.Session, url: str, image_bytes: bytes, filename: str,
               params: dict) -> tuple[requests.Response, float]:
    """``POST /matte`` with the image as a multipart file; returns (response, wall seconds)."""
    started = time.perf_counter()
    response = session.post(url + "/matte", params=params,
                            files={"image": (filename, image_bytes)}, timeout=600)
    return response, time.perf_counter() - started


def matte_npy(response: requests.Response) -> np.ndarray:
    if response.status_code != 200:
        raise RuntimeError(f"/matte answered {response.status_code}: {response.text[:300]}")
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def evaluate_pipeline(samples: list[Sample], urls, backend_label: str, band_scales,
                      progress: Callable[[str], None] = print,
                      example_names: set | None = None) -> tuple[list[dict], dict]:
    """Alpha scores through the running services for each trimap variant.

    Returns:
        ``(rows, examples)``; ``examples[(dataset, name)]`` holds the input, trimap, alpha
        and composite of the samples named in ``example_names`` (fixed trimap).
    """
    rows, examples = [], {}
    session = requests.Session()
    for variant, extra in trimap_variants(band_scales).items():
        for sample in samples:
            data = Path(sample.image_path).read_bytes()
            response, wall = post_matte(session, urls.matting, data, sample.image_path.name,
                                        {"output": "alpha", "format": "npy", **extra})
            alpha = matte_npy(response)
            if alpha.shape != sample.truth.shape:
                raise RuntimeError(f"{sample.name}: alpha {alpha.shape} vs mask {sample.truth.shape}")
            scores = mask_scores(alpha, sample.truth)
            timing = parse_server_timing(response.headers.get("Server-Timing", ""))
            rows.append({"dataset": sample.dataset, "image": sample.name,
                         "segmenter": backend_label, "trimap": variant,
                         "alpha_iou": scores["iou"], "alpha_bf": scores["bf"],
                         "band_fraction": float(np.mean((alpha > 0.0) & (alpha < 1.0))),
                         "wall_s": wall, "server_ms": timing,
                         "person_found": response.headers.get("X-Person-Found") == "true"})
            if example_names and (sample.dataset, sample.name) in example_names \
                    and variant == FIXED_TRIMAP:
                examples[(sample.dataset, sample.name)] = fetch_example(
                    session, urls.matting, data, sample.image_path.name, alpha, sample.image)
        picked = [r for r in rows if r["trimap"] == variant]
        progress(f"  pipeline {backend_label} / {variant:<22} alpha IoU "
                 f"{np.mean([r['alpha_iou'] for r in picked]):.3f}  BF "
                 f"{np.mean([r['alpha_bf'] for r in picked]):.3f}  "
                 f"{np.mean([r['wall_s'] for r in picked]):.2f} s/image ({len(picked)} images)")
    for sample in samples:
        sample.release()
    return rows, examples


def fetch_example(session, url, data: bytes, filename: str, alpha: np.ndarray,
                  image: np.ndarray) -> dict:
    """Trimap and composite of one image from the service, for the example figure."""
    from core.images import decode_image

    out = {"image": image, "alpha": alpha}
    for output in ("trimap", "composite"):
        response, _ = post_matte(session, url, data, filename, {"output": output, "format": "png"})
        if response.status_code != 200:
            raise RuntimeError(f"/matte output={output} answered {response.status_code}")
        decoded = decode_image(response.content)
        out[output] = decoded[:, :, 0] if output == "trimap" else decoded
    return out


def pipeline_backends() -> tuple[list[str], dict[str, str]]:
    """Segmentation backends the services can start with here (registry order)."""
    names, skipped = [], {}
    for name in SEGMENTERS:
        ok, why = load_class(SEGMENTERS[name]).is_available()
        (names.append(name) if ok else skipped.__setitem__(name, why))
    return names, skipped
