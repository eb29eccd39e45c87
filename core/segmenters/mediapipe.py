"""Embedded person segmentation with MediaPipe (models ship inside the wheel).

The selfie model works at 256x256 (``general``) or 144x256 (``landscape``); it is made
for people close to the camera.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from core.segmenters import Segmenter

log = logging.getLogger(__name__)


class MediaPipeSegmenter(Segmenter):
    name = "mediapipe"

    def __init__(self, model: str = "general", **_unused):
        import mediapipe as mp  # imported here: ~1 s, and only this backend needs it

        if model not in ("general", "landscape"):
            raise ValueError(f"mediapipe model must be 'general' or 'landscape', got {model!r}")
        self.model = model
        self._selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(
            model_selection=0 if model == "general" else 1)
        # MediaPipe graphs are not re-entrant: one request at a time per graph.
        self._lock = threading.Lock()

    @classmethod
    def is_available(cls, **options) -> tuple[bool, str]:
        try:
            import mediapipe  # noqa: F401
        except ImportError as exc:
            return False, f"mediapipe is not installed ({exc})"
        return True, "embedded model from the mediapipe wheel"

    def segment(self, image: np.ndarray) -> np.ndarray:
        with self._lock:
            result = self._selfie.process(np.ascontiguousarray(image))
        mask = result.segmentation_mask
        if mask is None:
            return np.zeros(image.shape[:2], np.float32)
        return np.clip(mask, 0.0, 1.0).astype(np.float32, copy=False)

    def describe(self) -> dict:
        return {"name": self.name, "model": self.model}
