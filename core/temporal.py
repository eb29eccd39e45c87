"""What a video carries from one frame to the next: :class:`VideoState`, the optional,
explicit per-video part of :class:`core.pipeline.Pipeline` (temporal smoothing of the
soft mask and of alpha, :class:`TemporalSmoother`)."""
from __future__ import annotations

from collections import deque

import cv2
import numpy as np


class TemporalSmoother:
    """Exponential moving average of a per-pixel map (soft mask, alpha) that follows motion.

    For each pixel the update rate (the weight of the new value) is the larger of two:

    - from the input: ``still_rate`` where the (slightly blurred, grey) input changed by
      at most ``low`` grey levels since the previous frame, 1 where it changed by ``high``
      or more, linear in between;
    - from the map itself, where the input moved nearby (within ``reach`` of the image
      diagonal of a pixel whose grey level changed by more than ``low``): 0 where the new
      value differs from the smoothed one by at most ``follow_low``, 1 where it differs by
      ``follow_high`` or more, linear in between.

    Still regions settle (the segmenter's and the encoder's tremble at an outline, a few
    hundredths to a few tenths, and its jumps where nothing moved at all, are averaged
    away), while anything that moves is followed at once, even where the input barely
    changes: an arm swinging over a wall of nearly its own colour turns the map from 1 to
    0 where it was, its outline changing the input nearby, and a rate from the input alone
    would leave a fading trail of it for several frames (``still_rate`` 0.25: 0.75, 0.56,
    0.42...).

    Args:
        still_rate: weight of the new value in still regions, in ``(0, 1]``.
        low, high: input change thresholds in grey levels (0-255).
        follow_low, follow_high: map change thresholds (map units, 0-1; a ``follow_low``
            of 1 or more turns following the map off: the input alone sets the rate).
        reach: how near (share of the image diagonal) the input must have moved for the
            map's own change to count.
    Raises:
        ValueError: a value out of range.
    """

    def __init__(self, still_rate: float = 0.25, low: float = 3.0, high: float = 12.0,
                 follow_low: float = 0.3, follow_high: float = 0.6, reach: float = 0.02):
        if not 0 < still_rate <= 1:
            raise ValueError(f"still_rate must lie in (0, 1], got {still_rate}")
        if not 0 <= low < high:
            raise ValueError(f"need 0 <= low < high, got low={low}, high={high}")
        if not 0 <= follow_low < follow_high:
            raise ValueError(f"need 0 <= follow_low < follow_high, got {follow_low}, "
                             f"{follow_high}")
        self.still_rate, self.low, self.high = still_rate, low, high
        if not 0 <= reach <= 1:
            raise ValueError(f"reach must lie in [0, 1], got {reach}")
        self.follow_low, self.follow_high, self.reach = follow_low, follow_high, reach
        self._grey: np.ndarray | None = None
        self.rate: np.ndarray | None = None

    def observe(self, image: np.ndarray) -> np.ndarray | None:
        """Take the next input frame (``uint8`` RGB ``H x W x 3``); returns the per-pixel
        update rate from the input (``float32`` ``H x W`` in ``[still_rate, 1]``), ``None``
        on the first frame or after a size change."""
        grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (5, 5), 0)
        previous, self._grey = self._grey, grey
        if previous is None or previous.shape != grey.shape:
            self.rate = None
            return None
        change = cv2.absdiff(grey, previous).astype(np.float32)
        ramp = np.clip((change - self.low) * (1.0 / (self.high - self.low)), 0.0, 1.0)
        self.rate = self.still_rate + (1.0 - self.still_rate) * ramp
        return self.rate

    def blend(self, previous: np.ndarray | None, current: np.ndarray,
              rate: np.ndarray | None | object = ...) -> np.ndarray:
        """``previous + r * (current - previous)``, ``r`` per pixel the larger of the
        input's rate and, where the input moved nearby, the map's own change (``current``
        unchanged when there is no rate or no previous).

        Args:
            previous: the last smoothed map, ``float32`` ``H x W``, or ``None``.
            current: this frame's map, ``float32`` ``H x W``.
            rate: the input's rate for this frame (what :meth:`observe` returned for it,
                ``None`` on a first frame); default: that of the last :meth:`observe`.
        Returns:
            ``float32`` ``H x W``.
        """
        rate = self.rate if rate is ... else rate
        if previous is None or rate is None or previous.shape != current.shape:
            return current
        step = cv2.subtract(current, previous)
        follow = cv2.absdiff(current, previous)
        follow = np.clip((follow - self.follow_low) * (1.0 / (self.follow_high - self.follow_low)),
                         0.0, 1.0)
        # Where the input moved nearby: the rate is above the still rate where it changed.
        side = 2 * max(1, round(self.reach * float(np.hypot(*rate.shape)))) + 1
        moved = cv2.dilate((rate > self.still_rate + 1e-6).astype(np.uint8),
                           cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
        follow[moved == 0] = 0.0
        rate = cv2.max(rate, follow)
        return cv2.add(previous, cv2.multiply(rate, step))


class VideoState:
    """Per-video state handed to :meth:`core.pipeline.Pipeline.run` frame after frame.

    Photos pass none; a video loop makes one per video (:meth:`core.pipeline.Pipeline.new_video`)
    and passes it with every frame, in order. The two halves of a frame's work may overlap
    across frames (:meth:`~core.pipeline.Pipeline.segment` of frame ``t + 1`` while
    :meth:`~core.pipeline.Pipeline.matte` works on frame ``t``, in two threads): each half
    keeps its own part of the state, and each frame's update rate from the input waits in
    a queue for its alpha, so alpha is smoothed with its own frame's rate, never the next
    one's.

    Args:
        smoother: temporal smoothing of the soft mask (before the trimap is built) and of
            alpha; ``None`` turns smoothing off.

    Attributes:
        tracking: what a segmenter that follows people (``follows_people``, e.g.
            :class:`core.segmenters.tracking.TrackingSegmenter`) carries from one frame to
            the next: its own object, ``None`` until it first runs.
    """

    # Frames observed whose alpha is not smoothed yet: at most the video loop's queues.
    MAX_PENDING = 64

    def __init__(self, smoother: TemporalSmoother | None = None):
        self.smoother = smoother
        self.tracking = None
        self._mask: np.ndarray | None = None
        self._alpha: np.ndarray | None = None
        self._rate: np.ndarray | None = None
        self._pending: deque = deque(maxlen=self.MAX_PENDING)
        self.frames = 0

    def observe(self, image: np.ndarray) -> None:
        """Take the next frame (``uint8`` RGB ``H x W x 3``) before its mask is smoothed."""
        self.frames += 1
        if self.smoother is not None:
            self._rate = self.smoother.observe(image)
            self._pending.append(self._rate)

    def smooth_mask(self, mask: np.ndarray) -> np.ndarray:
        """The frame's soft mask blended with the previous frame's where the input is still
        (the rate of the frame last observed)."""
        if self.smoother is None:
            return mask
        self._mask = self.smoother.blend(self._mask, mask, self._rate)
        return self._mask

    def smooth_alpha(self, alpha: np.ndarray) -> np.ndarray:
        """The frame's alpha blended with the previous frame's where the input is still
        (the rate of the oldest frame observed and not yet given its alpha: frames pass
        :meth:`observe` and this in the same order)."""
        if self.smoother is None:
            return alpha
        rate = self._pending.popleft() if self._pending else None
        self._alpha = self.smoother.blend(self._alpha, alpha, rate)
        return self._alpha
