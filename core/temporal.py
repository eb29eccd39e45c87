"""What a video carries from one frame to the next: :class:`VideoState`, the optional,
explicit per-video part of :class:`core.pipeline.Pipeline` (temporal smoothing of the
soft mask and of alpha, :class:`TemporalSmoother`)."""
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


class VideoState:
    """Per-video state handed to :meth:`core.pipeline.Pipeline.run` frame after frame.

    Photos pass none; a video loop makes one per video (:meth:`core.pipeline.Pipeline.new_video`)
    and passes it with every frame, in order.

    Args:
        smoother: temporal smoothing of the soft mask (before the trimap is built) and of
            alpha; ``None`` turns smoothing off.
    """

    def __init__(self, smoother: TemporalSmoother | None = None):
        self.smoother = smoother
        self._mask: np.ndarray | None = None
        self._alpha: np.ndarray | None = None
        self.frames = 0

    def observe(self, image: np.ndarray) -> None:
        """Take the next frame (``uint8`` RGB ``H x W x 3``) before its mask is smoothed."""
        self.frames += 1
        if self.smoother is not None:
            self.smoother.observe(image)

    def smooth_mask(self, mask: np.ndarray) -> np.ndarray:
        """The frame's soft mask blended with the previous frame's where the input is still."""
        if self.smoother is None:
            return mask
        self._mask = self.smoother.blend(self._mask, mask)
        return self._mask

    def smooth_alpha(self, alpha: np.ndarray) -> np.ndarray:
        """The frame's alpha blended with the previous frame's where the input is still."""
        if self.smoother is None:
            return alpha
        self._alpha = self.smoother.blend(self._alpha, alpha)
        return self._alpha
