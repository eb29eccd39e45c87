"""One function wiring the stages: segment -> trimap -> matte -> render.

The services split these stages across two processes; the CLI (``--local``), the video
loop and the notebook call them in-process. Either way the same functions run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.compositing import composite, cutout, make_background
from core.images import alpha_to_uint16, to_float, to_uint8
from core.trimap import BACKGROUND, FOREGROUND, TrimapParams, has_person, mask_to_trimap

OUTPUT_TYPES = ("composite", "cutout", "alpha", "foreground", "trimap", "mask")


@dataclass
class MatteResult:
    """Everything one photo's matting produced (float32 arrays in [0, 1])."""

    image: np.ndarray            # H x W x 3
    trimap: np.ndarray           # uint8 H x W
    alpha: np.ndarray            # H x W
    foreground: np.ndarray       # H x W x 3
    mask: np.ndarray | None = None  # the segmenter's soft mask, when there is one

    @property
    def person_found(self) -> bool:
        return has_person(self.trimap)


def matte_with_trimap(image: np.ndarray, trimap: np.ndarray, matter,
                      mask: np.ndarray | None = None) -> MatteResult:
    """Alpha and foreground for ``image`` (uint8 RGB) given its ``trimap``, and the
    segmenter's soft ``mask`` (``float32`` ``H x W``) as a prior when there is one.

    With no person in the trimap nothing is solved: alpha is 0 and the foreground is the image.
    """
    if image.shape[:2] != trimap.shape:
        raise ValueError(f"trimap is {trimap.shape[1]}x{trimap.shape[0]} but the image is "
                         f"{image.shape[1]}x{image.shape[0]}")
    image_f = to_float(image)
    if not has_person(trimap):
        return MatteResult(image_f, trimap, np.zeros(trimap.shape, np.float32), image_f, mask)
    alpha, foreground = matter.matte(image_f, trimap, mask)
    # Sure regions are sure, whatever a backend's numerics say.
    alpha = alpha.astype(np.float32, copy=False)
    alpha[trimap == FOREGROUND] = 1.0
    alpha[trimap == BACKGROUND] = 0.0
    return MatteResult(image_f, trimap, alpha, foreground.astype(np.float32, copy=False), mask)


def matte_image(image: np.ndarray, segmenter, matter,
                trimap_params: TrimapParams = TrimapParams()) -> MatteResult:
    """Segment, build the trimap and matte, all in this process."""
    mask = segmenter.segment(image)
    return matte_with_trimap(image, mask_to_trimap(mask, trimap_params), matter, mask)


def render(result: MatteResult, output_type: str = "composite", background="#00ff00",
           fit: str = "cover", alpha_bits: int = 8) -> np.ndarray:
    """Turn a :class:`MatteResult` into the image the user asked for.

    Args:
        output_type: one of :data:`OUTPUT_TYPES`. ``composite`` over ``background``
            (a spec or array, see :func:`core.compositing.make_background`; ``transparent``
            gives the cutout); ``cutout`` RGBA; ``alpha`` grey; ``foreground`` RGB colours
            (FBA's or estimated) over black where alpha is 0; ``trimap``; ``mask`` (soft mask).
        alpha_bits: 8 or 16 for ``alpha`` (16 keeps the matte lossless enough to compare).
    Returns:
        ``uint8`` (or ``uint16`` alpha) array: ``H x W``, ``H x W x 3`` or ``H x W x 4``.
        A composite of a photo without people is the photo unchanged (the original's rule).
    """
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    if alpha_bits not in (8, 16):
        raise ValueError(f"alpha_bits must be 8 or 16, got {alpha_bits}")
    if output_type == "composite":
        bg = make_background(background, result.image, fit)
        if bg is None:
            return cutout(result.foreground, result.alpha)
        if not result.person_found:
            return to_uint8(result.image)
        return composite(result.foreground, result.alpha, bg)
    if output_type == "cutout":
        return cutout(result.foreground, result.alpha)
    if output_type == "alpha":
        return alpha_to_uint16(result.alpha) if alpha_bits == 16 else to_uint8(result.alpha)
    if output_type == "foreground":
        return to_uint8(result.foreground * (result.alpha[:, :, None] > 0))
    if output_type == "trimap":
        return result.trimap
    if result.mask is None:
        raise ValueError("no soft mask: the trimap did not come from a segmenter")
    return to_uint8(result.mask)
