"""Temporal smoothing (:class:`TemporalSmoother`) and how steady alpha is (:func:`flicker`)."""
from __future__ import annotations

import cv2
import numpy as np


class TemporalSmoother:
    """Exponential moving average of a per-pixel map where the input barely changed.

    For each pixel the update rate is ``still_rate`` where the (slightly blurred, grey)
    input changed by at most ``low`` grey levels since the previous frame, 1 where it
    changed by ``high`` or more, and linear in between: still regions settle (no
    flicker from the segmenter's and encoder's noise), moving ones follow at once.

    Args:
        still_rate: weight of the new value in still regions, in ``(0, 1]``.
        low, high: change thresholds in grey levels (0-255).
    """

    def __init__(self, still_rate: float = 0.25, low: float = 3.0, high: float = 12.0):
        if not 0 < still_rate <= 1:
            raise ValueError(f"still_rate must lie in (0, 1], got {still_rate}")
        if not 0 <= low < high:
            raise ValueError(f"need 0 <= low < high, got low={low}, high={high}")
        self.still_rate, self.low, self.high = still_rate, low, high
        self._grey: np.ndarray | None = None
        self.rate: np.ndarray | None = None

    def reset(self) -> None:
        self._grey, self.rate = None, None

    def observe(self, image: np.ndarray) -> np.ndarray | None:
        """Take the next input frame (``uint8`` RGB ``H x W x 3``); returns the per-pixel
        update rate (``float32`` ``H x W`` in ``[still_rate, 1]``), ``None`` on the first
        frame or after a size change."""
        grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (5, 5), 0)
        previous, self._grey = self._grey, grey
        if previous is None or previous.shape != grey.shape:
            self.rate = None
            return None
        change = cv2.absdiff(grey, previous).astype(np.float32)
        ramp = np.clip((change - self.low) * (1.0 / (self.high - self.low)), 0.0, 1.0)
        self.rate = self.still_rate + (1.0 - self.still_rate) * ramp
        return self.rate

    def blend(self, previous: np.ndarray | None, current: np.ndarray) -> np.ndarray:
        """``previous + rate * (current - previous)`` with the rate from the last
        :meth:`observe` (``current`` unchanged when there is no rate or no previous)."""
        if previous is None or self.rate is None or previous.shape != current.shape:
            return current
        return cv2.add(previous, cv2.multiply(self.rate, cv2.subtract(current, previous)))


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
