"""Person segmenters: ``segment(image) -> soft mask``.

Every backend is one module here with a :class:`Segmenter` subclass, plus one line in
:data:`SEGMENTERS`. Order matters for ``auto``: the first available wins, so the primary
model (Mask R-CNN, when its weights are present) comes before the embedded default.
"""
from __future__ import annotations

import numpy as np

from core.registry import create_backend

SEGMENTERS = {
    "maskrcnn": "core.segmenters.maskrcnn:MaskRCNNSegmenter",
    "mediapipe": "core.segmenters.mediapipe:MediaPipeSegmenter",
}


class Segmenter:
    """Base class. Subclasses set :attr:`name` and implement :meth:`segment`."""

    name = "base"

    @classmethod
    def is_available(cls, **options) -> tuple[bool, str]:
        """Whether this backend can run here, and a short reason for the log."""
        return True, "embedded"

    def segment(self, image: np.ndarray) -> np.ndarray:
        """Soft mask of all people.

        Args:
            image: ``uint8`` RGB ``H x W x 3``.
        Returns:
            ``float32`` ``H x W`` in ``[0, 1]``; all zeros when nobody is there.
        """
        raise NotImplementedError

    def describe(self) -> dict:
        """Facts for ``/health`` and logs."""
        return {"name": self.name}


def create_segmenter(name: str = "auto", **options) -> Segmenter:
    """Build a segmenter by registry name (or ``auto``); see :func:`core.registry.create_backend`."""
    return create_backend("segmentation", SEGMENTERS, name, **options)
