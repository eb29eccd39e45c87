"""Person segmenters: ``segment(image) -> soft mask``.

A segmenter only finds people; :class:`core.pipeline.LocalPersonSource` turns its mask into
a trimap, and :class:`core.pipeline.Pipeline` mattes it.

Every backend is one module here with a :class:`Segmenter` subclass, plus one line in
:data:`SEGMENTERS`. Order matters for ``auto``: the first available wins, so the primary
model (Mask R-CNN, when its weights are present) comes before the embedded default, and
``onnx`` (a downloaded model, chosen by name) comes after it.
"""
from __future__ import annotations

import numpy as np

from core.people import People
from core.registry import Backend, create_backend

SEGMENTERS = {
    "maskrcnn": "core.segmenters.maskrcnn:MaskRCNNSegmenter",
    "mediapipe": "core.segmenters.mediapipe:MediaPipeSegmenter",
    # Video: follows people from frame to frame through the pipeline's VideoState.
    "mediapipe-tracking": "core.segmenters.tracking:TrackingSegmenter",
    # rembg's downloadable ONNX person models: chosen by name; last, so 'auto' takes it
    # only where neither Mask R-CNN nor MediaPipe can run.
    "onnx": "core.segmenters.onnx_person:OnnxPersonSegmenter",
}


class Segmenter(Backend):
    """Base class. Subclasses set :attr:`name` and implement :meth:`segment`.

    A segmenter that follows people from frame to frame sets :attr:`follows_people`; its
    ``segment`` then also takes ``state=`` (the video's :class:`~core.temporal.VideoState`,
    ``None`` for a photo), which :class:`core.pipeline.LocalPersonSource` passes on.
    """

    follows_people = False

    def segment(self, image: np.ndarray, *, max_people: int | None = None) -> np.ndarray:
        """Soft mask of all people.

        Args:
            image: ``uint8`` RGB ``H x W x 3``.
            max_people: keep at most this many people in this call (the most prominent);
                ``None``: the backend's configured limit.
        Returns:
            ``float32`` ``H x W`` in ``[0, 1]``; all zeros when nobody is there.
        Raises:
            ParameterError: ``max_people`` is not a positive number, or the backend cannot
                tell people apart (it then says so).
        """
        raise NotImplementedError

    def find_people(self, image: np.ndarray, *, max_people: int | None = None) -> People:
        """Everyone in ``image`` as instances (:class:`core.people.People`: the soft mask,
        each person's box, score and area, which pixels are whose). This default takes the
        connected regions of :meth:`segment`'s mask; backends that tell people apart
        themselves override it."""
        return People.from_mask(self.segment(image, max_people=max_people))


def create_segmenter(name: str = "auto", per_backend=None, **options) -> Segmenter:
    """Build a segmenter by registry name (or ``auto``); see :func:`core.registry.create_backend`.

    Raises:
        ConfigError: unknown name or option; BackendUnavailable: it cannot run here.
    """
    return create_backend("segmentation", SEGMENTERS, name, per_backend, **options)
