"""Closed-form matting (Levin et al. 2008) via pymatting, solved only where it matters.

pymatting's ``estimate_alpha_cf`` builds the matting Laplacian over the whole image. We
crop to the bounding box of the unknown band (plus the Laplacian's window radius), so
the cost follows the number of unknown pixels rather than the image area, and estimate
foreground colours (pymatting's multi-level method) on the same crop.

The solver's cost grows faster than linearly with the unknown count (the incomplete
Cholesky preconditioner fills in), so past ``max_unknown`` pixels we solve on a
downscaled copy and upsample alpha: at 720p with a typical portrait band (~120k unknown
pixels) this is 0.35 s instead of 3.6 s, for a mean absolute alpha change of ~0.02 in the
band. ``max_unknown=0`` always solves at full resolution.
"""
from __future__ import annotations

import logging

import cv2
import numpy as np

from core.matters import Matter
from core.trimap import BACKGROUND, FOREGROUND, UNKNOWN

log = logging.getLogger(__name__)


def unknown_bbox(trimap: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """Bounding box of the unknown pixels grown by ``margin``; ``None`` when there are none."""
    rows = np.flatnonzero(np.any(trimap == UNKNOWN, axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(np.any(trimap == UNKNOWN, axis=0))
    h, w = trimap.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, w)))


def estimate_alpha_closed_form(image: np.ndarray, trimap: np.ndarray, epsilon: float = 1e-7,
                               radius: int = 1, max_iterations: int = 2000,
                               tolerance: float = 1e-7, max_unknown: int = 50_000) -> np.ndarray:
    """Closed-form alpha on the unknown band's bounding box (downscaled past ``max_unknown``).

    Args:
        image: ``float`` RGB ``H x W x 3`` in ``[0, 1]``.
        trimap: ``uint8`` ``H x W`` (0 / 128 / 255).
    Returns:
        ``float32`` alpha ``H x W`` in ``[0, 1]``.
    """
    from pymatting import estimate_alpha_cf

    n_unknown = int(np.count_nonzero(trimap == UNKNOWN))
    if max_unknown and n_unknown > max_unknown:
        return _solve_downscaled(image, trimap, np.sqrt(n_unknown / max_unknown),
                                 epsilon=epsilon, radius=radius,
                                 max_iterations=max_iterations, tolerance=tolerance)
    alpha = (trimap == FOREGROUND).astype(np.float32)
    box = unknown_bbox(trimap, margin=radius + 1)
    if box is None:
        return alpha
    sub_trimap = trimap[box].astype(np.float64) / 255.0
    if sub_trimap.min() > 0.0 or sub_trimap.max() < 1.0:
        # No sure background (or foreground) to anchor the solution: the system is
        # singular. Fall back to the trimap's own guess rather than solve noise.
        log.debug("unknown band has no %s anchor; using 0.5", "bg" if sub_trimap.min() else "fg")
        alpha[box][trimap[box] == UNKNOWN] = 0.5
        return alpha
    sub_alpha = estimate_alpha_cf(
        image[box].astype(np.float64), sub_trimap,
        laplacian_kwargs={"epsilon": epsilon, "radius": radius},
        cg_kwargs={"maxiter": max_iterations, "rtol": tolerance},
    )
    alpha[box] = sub_alpha
    return alpha


def _solve_downscaled(image, trimap, scale, **solver):
    h, w = trimap.shape
    size = (max(int(round(w / scale)), 8), max(int(round(h / scale)), 8))
    small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_trimap = cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST)
    small_alpha = estimate_alpha_closed_form(small_image, small_trimap, max_unknown=0, **solver)
    alpha = cv2.resize(small_alpha, (w, h), interpolation=cv2.INTER_LINEAR)
    alpha[trimap == FOREGROUND] = 1.0
    alpha[trimap == BACKGROUND] = 0.0
    return np.clip(alpha, 0.0, 1.0)


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, trimap: np.ndarray,
                        regularization: float = 1e-5, max_pixels: int = 300_000) -> np.ndarray:
    """Foreground colours where alpha is fractional (pymatting's multi-level method);
    the image itself elsewhere.

    The estimate runs on the unknown band's bounding box; past ``max_pixels`` on a
    downscaled copy of it (foreground colours vary slowly across a band, and only pixels
    with 0 < alpha < 1 take the estimate; the rest keep the photo's own full-resolution
    colours). ``max_pixels=0`` always works at full resolution.

    Returns:
        ``float32`` ``H x W x 3`` in ``[0, 1]``.
    """
    from pymatting import estimate_foreground_ml

    foreground = image.astype(np.float32, copy=True)
    box = unknown_bbox(trimap, margin=4)
    if box is None:
        return foreground
    sub_image, sub_alpha = image[box], alpha[box]
    h, w = sub_alpha.shape
    scale = np.sqrt(h * w / max_pixels) if max_pixels and h * w > max_pixels else 1.0
    if scale > 1.0:
        size = (max(int(round(w / scale)), 8), max(int(round(h / scale)), 8))
        sub_image = cv2.resize(sub_image, size, interpolation=cv2.INTER_AREA)
        sub_alpha = cv2.resize(sub_alpha, size, interpolation=cv2.INTER_AREA)
    sub_fg = estimate_foreground_ml(sub_image.astype(np.float64), sub_alpha.astype(np.float64),
                                    regularization=regularization).astype(np.float32)
    if scale > 1.0:
        sub_fg = cv2.resize(sub_fg, (w, h), interpolation=cv2.INTER_LINEAR)
    fractional = (alpha[box] > 0.0) & (alpha[box] < 1.0)
    foreground[box][fractional] = np.clip(sub_fg[fractional], 0.0, 1.0)
    return foreground


class ClosedFormMatter(Matter):
    """Embedded default: closed-form alpha + multi-level foreground, no weights needed."""

    name = "closed-form"

    def __init__(self, epsilon: float = 1e-7, radius: int = 1, max_iterations: int = 2000,
                 tolerance: float = 1e-7, max_unknown: int = 50_000, **_unused):
        self.epsilon, self.radius, self.max_unknown = epsilon, radius, max_unknown
        self.max_iterations, self.tolerance = max_iterations, tolerance

    @classmethod
    def is_available(cls, **options) -> tuple[bool, str]:
        return True, "embedded (pymatting closed-form)"

    def matte(self, image, trimap):
        alpha = estimate_alpha_closed_form(image, trimap, self.epsilon, self.radius,
                                           self.max_iterations, self.tolerance, self.max_unknown)
        return alpha, estimate_foreground(image, alpha, trimap)

    def describe(self) -> dict:
        return {"name": self.name, "epsilon": self.epsilon, "radius": self.radius,
                "max_unknown": self.max_unknown}
