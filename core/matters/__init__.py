"""Matting backends: ``matte(image, trimap, prior) -> alpha, foreground``.

Callers go through :func:`core.pipeline.matte_with_trimap`, which also makes alpha exactly
0 / 1 on the trimap's sure regions (backends need not).

Every backend is one module here with a :class:`Matter` subclass, plus one line in
:data:`MATTERS`. Order matters for ``auto``: the first available wins, so FBA (when
``models/FBA.pth`` is present) comes before the embedded closed-form default.
"""
from __future__ import annotations

import numpy as np

from core.registry import Backend, create_backend

MATTERS = {
    "fba": "core.matters.fba:FBAMatter",
    "closed-form": "core.matters.closed_form:ClosedFormMatter",
    "guided-filter": "core.matters.guided_filter:GuidedFilterMatter",
}


class Matter(Backend):
    """Base class. Subclasses set :attr:`name` and implement :meth:`matte`."""

    def matte(self, image: np.ndarray, trimap: np.ndarray,
              prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Estimate alpha and foreground colours in the trimap's unknown band.

        Args:
            image: ``float32`` RGB ``H x W x 3`` in ``[0, 1]``.
            trimap: ``uint8`` ``H x W`` (0 / 128 / 255).
            prior: optional ``float32`` ``H x W`` in ``[0, 1]``: the segmenter's soft mask,
                a hint for where the person is inside the band. Backends that learned
                their own notion of it (FBA) ignore it.
        Returns:
            ``(alpha, foreground)``: ``float32`` ``H x W`` and ``H x W x 3`` in ``[0, 1]``.
        """
        raise NotImplementedError

    def warm_up(self) -> None:
        """Matte a tiny synthetic image, so that JIT compilation (numba, in pymatting) and
        lazy set-up happen now rather than in a user's first request."""
        image = np.zeros((32, 32, 3), np.float32)
        image[8:24, 8:24] = 1.0
        trimap = np.zeros((32, 32), np.uint8)
        trimap[6:26, 6:26] = 128
        trimap[12:20, 12:20] = 255
        self.matte(image, trimap)


def create_matter(name: str = "auto", per_backend=None, **options) -> Matter:
    """Build a matting backend by registry name (or ``auto``); see
    :func:`core.registry.create_backend`.

    Raises:
        ConfigError: unknown name or option; BackendUnavailable: it cannot run here.
    """
    return create_backend("matting", MATTERS, name, per_backend, **options)
