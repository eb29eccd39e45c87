"""Quality measures: matting errors over a trimap's unknown band, mask overlap, boundary F,
and for video how steady alpha is between frames (:func:`flicker`).

All functions take numpy arrays and return Python floats; nothing here reads files.
Alpha mattes and soft masks are ``float`` ``H x W`` in ``[0, 1]``; binary masks are ``bool``
``H x W``; trimaps are ``uint8`` ``H x W`` with 128 marking the unknown band.

Matting errors follow the alpha matting literature (Rhemann et al. 2009; Xu et al. 2017):

- SAD: sum of absolute differences over the unknown pixels, divided by 1000;
- MSE: mean squared difference over the unknown pixels, multiplied by 1000;
- gradient error: sum over the unknown pixels of the squared difference of the gradient
  magnitudes, divided by 1000. Gradients come from the literature's ``gaussgradient``
  (Rhemann et al.'s MATLAB code, as ported by the Deep Image Matting evaluation): a
  first-derivative-of-Gaussian kernel, sigma 1.4, truncated where the Gaussian falls
  below 1 % and scaled to unit L2 norm, so gradient magnitudes are ``K`` times the true
  slope (``K`` = :func:`gradient_gain`, about 9.7 for sigma 1.4).
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

UNKNOWN = 128
GRADIENT_SIGMA = 1.4
BOUNDARY_TOLERANCE_PX = 3


def _check_same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {a.shape} vs {b.shape}")


def _unknown(trimap: np.ndarray | None, shape) -> np.ndarray:
    """Pixels to score: the trimap's unknown band, or everything when no trimap is given."""
    if trimap is None:
        return np.ones(shape, bool)
    if trimap.shape != tuple(shape):
        raise ValueError(f"trimap is {trimap.shape}, alpha is {tuple(shape)}")
    return trimap == UNKNOWN


def sad(alpha: np.ndarray, truth: np.ndarray, trimap: np.ndarray | None = None) -> float:
    """Sum of absolute differences over the unknown band, / 1000."""
    _check_same_shape(alpha, truth, "sad")
    region = _unknown(trimap, alpha.shape)
    diff = np.abs(alpha.astype(np.float64) - truth.astype(np.float64))
    return float(diff[region].sum() / 1000.0)


def mse(alpha: np.ndarray, truth: np.ndarray, trimap: np.ndarray | None = None) -> float:
    """Mean squared difference over the unknown band, x 1000 (0 when the band is empty)."""
    _check_same_shape(alpha, truth, "mse")
    region = _unknown(trimap, alpha.shape)
    if not region.any():
        return 0.0
    diff = alpha.astype(np.float64) - truth.astype(np.float64)
    return float(np.mean(diff[region] ** 2) * 1000.0)


def gradient_kernel(sigma: float = GRADIENT_SIGMA) -> np.ndarray:
    """The ``x``-derivative kernel of ``gaussgradient``: ``g(row) * g'(col)``, unit L2 norm."""
    epsilon = 1e-2
    half = int(np.ceil(sigma * np.sqrt(-2.0 * np.log(np.sqrt(2.0 * np.pi) * sigma * epsilon))))
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-u ** 2 / (2.0 * sigma ** 2)) / (sigma * np.sqrt(2.0 * np.pi))
    dgauss = -u * gauss / sigma ** 2
    kernel = np.outer(gauss, dgauss)
    return kernel / np.sqrt(np.sum(kernel ** 2))


def gradient_gain(sigma: float = GRADIENT_SIGMA) -> float:
    """Gradient magnitude :func:`gradient_magnitude` reports for a ramp of slope 1."""
    kernel = gradient_kernel(sigma)
    half = kernel.shape[1] // 2
    # convolve(x, h)(x0) = sum_k h[k] * (x0 - k) = -sum_k k h[k] since sum h = 0
    return float(-np.sum(kernel * (np.arange(-half, half + 1)[None, :])))


def gradient_magnitude(alpha: np.ndarray, sigma: float = GRADIENT_SIGMA) -> np.ndarray:
    """Magnitude of the ``gaussgradient`` of ``alpha`` (``float64`` ``H x W``)."""
    a = alpha.astype(np.float64)
    kernel = gradient_kernel(sigma)
    gx = ndimage.convolve(a, kernel, mode="nearest")
    gy = ndimage.convolve(a, kernel.T, mode="nearest")
    return np.hypot(gx, gy)


def gradient_error(alpha: np.ndarray, truth: np.ndarray, trimap: np.ndarray | None = None,
                   sigma: float = GRADIENT_SIGMA) -> float:
    """Sum over the unknown band of ``(|grad alpha| - |grad truth|)^2``, / 1000."""
    _check_same_shape(alpha, truth, "gradient_error")
    region = _unknown(trimap, alpha.shape)
    diff = gradient_magnitude(alpha, sigma) - gradient_magnitude(truth, sigma)
    return float(np.sum(diff[region] ** 2) / 1000.0)


def matting_errors(alpha: np.ndarray, truth: np.ndarray, trimap: np.ndarray) -> dict:
    """``{"sad", "mse", "grad"}`` of one matte."""
    return {"sad": sad(alpha, truth, trimap), "mse": mse(alpha, truth, trimap),
            "grad": gradient_error(alpha, truth, trimap)}


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two binary masks; 1.0 when both are empty."""
    _check_same_shape(pred, truth, "iou")
    pred, truth = pred.astype(bool), truth.astype(bool)
    union = np.count_nonzero(pred | truth)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pred & truth) / union)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Inner contour of a binary mask: mask pixels with a 4-neighbour outside the mask.

    Pixels on the image border count as contour only where the mask itself ends there
    (the frame edge is not an object edge), as in the DAVIS boundary measure.
    """
    m = mask.astype(np.uint8)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    eroded = cv2.erode(m, cross, borderType=cv2.BORDER_REPLICATE)
    return (m > 0) & (eroded == 0)


def boundary_f(pred: np.ndarray, truth: np.ndarray,
               tolerance: float = BOUNDARY_TOLERANCE_PX) -> float:
    """F-score of mask contours: a contour pixel is matched when the other mask's contour
    lies within ``tolerance`` pixels (Euclidean). 1.0 when neither mask has a contour,
    0.0 when only one has.

    precision = matched predicted contour / predicted contour,
    recall = matched true contour / true contour, F = 2PR / (P + R).
    """
    _check_same_shape(pred, truth, "boundary_f")
    bp, bt = boundary(pred), boundary(truth)
    n_p, n_t = int(bp.sum()), int(bt.sum())
    if n_p == 0 and n_t == 0:
        return 1.0
    if n_p == 0 or n_t == 0:
        return 0.0
    # distanceTransform: distance of every pixel to the nearest zero pixel.
    dist_to_t = cv2.distanceTransform((~bt).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    dist_to_p = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    precision = float(np.count_nonzero(dist_to_t[bp] <= tolerance) / n_p)
    recall = float(np.count_nonzero(dist_to_p[bt] <= tolerance) / n_t)
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def mask_scores(soft: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> dict:
    """``{"iou", "bf"}`` of ``soft > threshold`` against a binary ``truth``."""
    pred = soft > threshold
    return {"iou": iou(pred, truth), "bf": boundary_f(pred, truth)}


def flicker(images, alphas, reference=None, still: float = 2.0) -> dict:
    """How much alpha changes between consecutive frames where the input did not.

    Args:
        images: ``uint8`` RGB frames ``H x W x 3`` (the input).
        alphas: ``float`` ``H x W`` mattes in ``[0, 1]``, one per frame.
        reference: mattes that define the "edge" region (default: ``alphas``); pass the
            unsmoothed run's to compare two runs over the same pixels.
        still: a pixel is still when its grey level (5x5 Gaussian blur) changed by at most
            this much (0-255) since the previous frame.
    Returns:
        ``{"still": mean |alpha_t - alpha_t-1| over still pixels, "edge": the same over
        still pixels where the reference alpha lies strictly within (0.02, 0.98) in either
        frame, "still_pixels": ..., "edge_pixels": ...}``; means in alpha units (0-1).
    """
    reference = alphas if reference is None else reference
    if not (len(images) == len(alphas) == len(reference)):
        raise ValueError("images, alphas and reference need one entry per frame")
    sums = {"still": 0.0, "edge": 0.0, "still_pixels": 0, "edge_pixels": 0}
    previous = None
    for t, image in enumerate(images):
        grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (5, 5), 0)
        if previous is not None:
            quiet = cv2.absdiff(grey, previous) <= still
            soft = [(r > 0.02) & (r < 0.98) for r in (reference[t], reference[t - 1])]
            edge = quiet & (soft[0] | soft[1])
            change = np.abs(alphas[t].astype(np.float32) - alphas[t - 1])
            sums["still"] += float(change[quiet].sum())
            sums["edge"] += float(change[edge].sum())
            sums["still_pixels"] += int(quiet.sum())
            sums["edge_pixels"] += int(edge.sum())
        previous = grey
    return {"still": sums["still"] / max(sums["still_pixels"], 1),
            "edge": sums["edge"] / max(sums["edge_pixels"], 1),
            "still_pixels": sums["still_pixels"], "edge_pixels": sums["edge_pixels"]}


# -- people: how much of each person is kept, and how much of the matte is neither 0 nor 1 --

SEMI_LOW, SEMI_HIGH = 0.1, 0.9


def semi_transparent_share(alpha: np.ndarray, region: np.ndarray | None = None,
                           low: float = SEMI_LOW, high: float = SEMI_HIGH) -> float:
    """Share of pixels with ``low < alpha < high`` (over ``region``, a ``bool`` mask or a
    ``(x0, y0, x1, y1)`` box, else the whole image). Ghosts and wide soft bands raise it;
    a crisp matte of a person keeps it to a thin band along the outline (a few %)."""
    alpha = np.asarray(alpha, dtype=np.float32)
    semi = (alpha > low) & (alpha < high)
    if region is None:
        return float(semi.mean()) if semi.size else 0.0
    if isinstance(region, tuple):
        x0, y0, x1, y1 = region
        part = semi[y0:y1, x0:x1]
        return float(part.mean()) if part.size else 0.0
    _check_same_shape(alpha, region, "semi_transparent_share")
    count = np.count_nonzero(region)
    return float(np.count_nonzero(semi & region) / count) if count else 0.0


def recall(alpha: np.ndarray, person: np.ndarray, threshold: float = 0.5) -> float:
    """Share of ``person`` 's pixels (``bool`` mask) where ``alpha > threshold``; 1.0 for
    an empty person."""
    _check_same_shape(alpha, person, "recall")
    total = np.count_nonzero(person)
    if total == 0:
        return 1.0
    return float(np.count_nonzero((alpha > threshold) & person) / total)


def boxes_mask(shape, boxes) -> np.ndarray:
    """``bool`` mask of the union of ``(x0, y0, x1, y1)`` boxes."""
    mask = np.zeros(shape[:2], bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(0, y0):y1, max(0, x0):x1] = True
    return mask
