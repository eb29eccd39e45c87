"""Closed-form matting (Levin et al. 2008) via pymatting, solved only where it matters.

pymatting's ``estimate_alpha_cf`` builds the matting Laplacian over the whole image. We
crop to the bounding box of the unknown band (plus the Laplacian's window radius), so
the cost follows the number of unknown pixels rather than the image area, and estimate
foreground colours (pymatting's multi-level method) on the same crop.

With the segmenter's soft mask as a weak prior (what the pipeline passes) the system is
well conditioned and conjugate gradients with a Jacobi preconditioner converge quickly;
without one, the incomplete-Cholesky preconditioner is used. The cost still grows faster
than linearly with the unknown count, so past ``max_unknown`` pixels we solve on a
downscaled copy and upsample alpha (``max_unknown=0`` always solves at full resolution).
Figures: ``docs/evaluation.md`` and ``docs/benchmarks.md``.
"""
from __future__ import annotations

import contextlib
import io
import logging

import cv2
import numpy as np

from core.matters import Matter
from core.trimap import (
    BACKGROUND,
    FOREGROUND,
    UNKNOWN,
    band_prior,
    impose_sure_regions,
    unknown_bbox,
)

log = logging.getLogger(__name__)


def estimate_alpha_closed_form(image: np.ndarray, trimap: np.ndarray,
                               prior: np.ndarray | None = None, prior_weight: float = 0.01,
                               epsilon: float = 1e-7, radius: int = 1,
                               max_iterations: int = 2000, tolerance: float = 1e-7,
                               max_unknown: int = 50_000) -> np.ndarray:
    """Closed-form alpha on the unknown band's bounding box (downscaled past ``max_unknown``).

    Minimises ``a' L a + prior_weight * |a - prior|^2`` over the unknown pixels, with the
    trimap's sure pixels fixed (Levin et al.'s closed form plus a data term). The matting
    Laplacian alone has no idea where the person is: in a wide band over a background of
    similar colours it propagates foreground into the wall. A weak pull toward the
    segmenter's soft mask keeps the solution anchored while the Laplacian still places the
    edge on the image's colour lines; it also conditions the system, so the solve is faster
    (the README's "Quality and speed" gives the figures).

    Args:
        image: ``float`` RGB ``H x W x 3`` in ``[0, 1]``.
        trimap: ``uint8`` ``H x W`` (0 / 128 / 255).
        prior: optional ``float`` ``H x W`` in ``[0, 1]`` (the soft person mask).
        prior_weight: strength of the pull toward ``prior`` (0 = plain closed form).
    Returns:
        ``float32`` alpha ``H x W`` in ``[0, 1]``.
    """
    solver = dict(prior_weight=prior_weight, epsilon=epsilon, radius=radius,
                  max_iterations=max_iterations, tolerance=tolerance)
    n_unknown = int(np.count_nonzero(trimap == UNKNOWN))
    if max_unknown and n_unknown > max_unknown:
        return _solve_downscaled(image, trimap, prior, np.sqrt(n_unknown / max_unknown), **solver)
    alpha = (trimap == FOREGROUND).astype(np.float32)
    box = unknown_bbox(trimap, margin=radius + 1)
    if box is None:
        return alpha
    sub_trimap = trimap[box]
    if prior is None and not ((sub_trimap == FOREGROUND).any() and (sub_trimap == BACKGROUND).any()):
        # No sure background (or foreground) to anchor the solution and no prior: the
        # system is singular. Use the trimap's own guess rather than solve noise.
        log.debug("unknown band without a fg/bg anchor or a prior; using 0.5")
        alpha[box][sub_trimap == UNKNOWN] = 0.5
        return alpha
    sub_prior = None if prior is None else prior[box]
    try:
        alpha[box] = _solve_band(image[box], sub_trimap, sub_prior, **solver)
    except ValueError as exc:  # pymatting's CG: "did not converge"
        # Ill-conditioned band (flat colours, epsilon tiny): anchor it to a distance ramp
        # across the band, or to the prior, and solve again; this always converges.
        log.warning("closed-form solve failed (%s); solving again with a ramp prior", exc)
        ramp = band_prior(sub_trimap) if sub_prior is None else sub_prior
        alpha[box] = _solve_band(image[box], sub_trimap, ramp,
                                 **{**solver, "prior_weight": max(prior_weight, 1e-3)})
    return alpha


def laplacian_rows(image: np.ndarray, is_unknown: np.ndarray, epsilon: float = 1e-7,
                   radius: int = 1, strip_pixels: int = 65_536):
    """The rows of the closed-form matting Laplacian (Levin et al. 2008, as pymatting's
    ``cf_laplacian`` builds it) that belong to the unknown pixels, built strip by strip.

    pymatting allocates ``(4 radius + 1)^2`` entries for every pixel of the image it is given
    and keeps them all (zeros included) in the matrix: for a thin band around a whole person
    that is the person's bounding box, ~20 million entries (~400 MB) at 720p, of which the
    solve needs the band's rows only. The Laplacian is a sum over windows, each window
    depending on its own pixels only, so each horizontal strip of window centres is built on
    its own (with ``radius`` rows of context above and below) and only its unknown rows are
    kept: the same values to rounding, in a few tens of MB whatever the image size.

    Args:
        image: ``float64`` RGB ``H x W x 3``.
        is_unknown: ``bool`` ``H x W``, the pixels whose rows are wanted (in raster order).
        epsilon, radius: the Laplacian's regularisation and window radius (pymatting's).
        strip_pixels: about how many pixels each strip holds.
    Returns:
        ``scipy.sparse.csr_matrix`` of shape ``(count of unknown pixels, H * W)``.
    """
    import scipy.sparse as sparse
    from pymatting import cf_laplacian

    h, w = is_unknown.shape
    wanted = np.flatnonzero(is_unknown.ravel())
    step = max(1, strip_pixels // max(w, 1))
    rows, cols, values = [], [], []
    for first in range(radius, h - radius, step):  # window centres first .. last - 1
        last = min(first + step, h - radius)
        top, bottom = first - radius, last + radius
        strip_unknown = is_unknown[top:bottom]
        if not strip_unknown.any():
            continue
        strip = cf_laplacian(image[top:bottom], epsilon, radius, is_known=~strip_unknown)
        local = np.flatnonzero(strip_unknown.ravel())
        part = strip[local].tocoo()
        rows.append(local[part.row] + top * w)
        cols.append(part.col + top * w)
        values.append(part.data)
    if not rows:
        return sparse.csr_matrix((len(wanted), h * w))
    global_rows = np.concatenate(rows)
    matrix = sparse.coo_matrix((np.concatenate(values),
                                (np.searchsorted(wanted, global_rows), np.concatenate(cols))),
                               shape=(len(wanted), h * w))
    return matrix.tocsr()  # sums each entry's parts from the strips that share it

def _solve_band(image, trimap, prior, prior_weight, epsilon, radius, max_iterations, tolerance):
    """Solve one crop; ``trimap`` uint8, ``prior`` float or None. Returns float32 alpha."""
    import scipy.sparse as sparse
    from pymatting import cg, ichol, jacobi

    is_fg = (trimap == FOREGROUND).ravel()
    is_unknown = (trimap == UNKNOWN).ravel()
    is_known = ~is_unknown
    rows = laplacian_rows(image.astype(np.float64), is_unknown.reshape(trimap.shape),
                          epsilon, radius)
    system = rows[:, is_unknown]
    rhs = -rows[:, is_known].dot(is_fg[is_known].astype(np.float64))
    x0 = None
    if prior is not None and prior_weight > 0:
        target = prior.astype(np.float64).ravel()[is_unknown]
        system = (system + prior_weight * sparse.identity(system.shape[0], format="csr")).tocsr()
        rhs = rhs + prior_weight * target
        x0 = target
    # With the prior's diagonal the system is well conditioned: the Jacobi preconditioner
    # reaches the same alpha without ichol's set-up cost.
    if x0 is not None:
        preconditioner = jacobi(system)
    else:
        # pymatting's ichol prints a "PERFORMANCE WARNING" to stdout when it must retry with
        # a larger shift (it then succeeds): keep that out of a service's output.
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            preconditioner = ichol(system)
        if printed.getvalue():
            log.debug("pymatting ichol: %s", " ".join(printed.getvalue().split()))
    solution = cg(system, rhs, x0=x0, M=preconditioner, maxiter=max_iterations, rtol=tolerance)
    alpha = is_fg.astype(np.float64)
    alpha[is_unknown] = np.clip(solution, 0.0, 1.0)
    return alpha.reshape(trimap.shape).astype(np.float32)


def _solve_downscaled(image, trimap, prior, scale, **solver):
    h, w = trimap.shape
    size = (max(int(round(w / scale)), 8), max(int(round(h / scale)), 8))
    small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_trimap = cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST)
    small_prior = None if prior is None else cv2.resize(prior, size, interpolation=cv2.INTER_AREA)
    small_alpha = estimate_alpha_closed_form(small_image, small_trimap, small_prior,
                                             max_unknown=0, **solver)
    alpha = np.clip(cv2.resize(small_alpha, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    # Sure pixels must read as sure before the foreground step picks fractional ones.
    return impose_sure_regions(alpha, trimap)


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
    licence = "MIT (pymatting), no weights"

    def __init__(self, epsilon: float = 1e-7, radius: int = 1, max_iterations: int = 2000,
                 tolerance: float = 1e-7, max_unknown: int = 50_000, prior_weight: float = 0.01):
        self.epsilon, self.radius, self.max_unknown = epsilon, radius, max_unknown
        self.prior_weight = prior_weight
        self.max_iterations, self.tolerance = max_iterations, tolerance

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return True, "embedded (pymatting closed-form)"

    def matte(self, image, trimap, prior=None):
        alpha = estimate_alpha_closed_form(image, trimap, prior, self.prior_weight, self.epsilon,
                                           self.radius, self.max_iterations, self.tolerance,
                                           self.max_unknown)
        return alpha, estimate_foreground(image, alpha, trimap)

    def describe(self) -> dict:
        return {**super().describe(), "epsilon": self.epsilon, "radius": self.radius,
                "max_unknown": self.max_unknown, "prior_weight": self.prior_weight}
