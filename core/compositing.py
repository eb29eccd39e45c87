"""Backgrounds and compositing: ``alpha * foreground + (1 - alpha) * background``.

A background is described by a string (``"#00ff00"``, ``"green"``, ``"blur"``,
``"blur:25"``, ``"transparent"``) or given as an image; :func:`make_background` turns
either into a ``float32`` ``H x W x 3`` array the size of the photo.
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import ImageColor

from core.errors import ParameterError
from core.images import to_uint8

DEFAULT_BACKGROUND = "#00ff00"  # the original composites over pure green
FIT_MODES = ("cover", "contain", "stretch")
DEFAULT_BLUR = 21.0  # Gaussian sigma as a fraction-of-1000 of the image diagonal (see blur)


def parse_color(spec: str) -> tuple[int, int, int]:
    """``"#RRGGBB"``, ``"#RGB"``, ``"RRGGBB"`` or a CSS colour name -> RGB bytes.

    Raises:
        ParameterError: not a colour.
    """
    text = spec.strip()
    if len(text) in (3, 6) and all(c in "0123456789abcdefABCDEF" for c in text):
        text = "#" + text
    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError:
        if "/" in text or "\\" in text or "." in text:  # meant as a file that is not there
            raise ParameterError(f"background file not found: {spec!r} (give an existing image "
                                 "file, or a colour such as #RRGGBB or 'green')") from None
        raise ParameterError(f"{spec!r} is not a colour (use #RRGGBB or a name such as 'green')") from None


def fitted_size(source: tuple[int, int], size: tuple[int, int], mode: str = "cover"
                ) -> tuple[int, int]:
    """``(height, width)`` a ``source = (height, width)`` image is scaled to before it is
    cropped (``cover``) or padded (``contain``) to ``size``; ``stretch`` gives ``size``.

    Raises:
        ParameterError: an unknown ``mode``.
    """
    if mode not in FIT_MODES:
        raise ParameterError(f"fit must be one of {FIT_MODES}, got {mode!r}")
    h, w = size
    ih, iw = source
    if mode == "stretch":
        return h, w
    scale = max(h / ih, w / iw) if mode == "cover" else min(h / ih, w / iw)
    return max(int(round(ih * scale)), 1), max(int(round(iw * scale)), 1)


def fit_image(image: np.ndarray, size: tuple[int, int], mode: str = "cover") -> np.ndarray:
    """Resize ``image`` to ``size = (height, width)``.

    ``cover`` fills the frame and crops the overflow (centred), ``contain`` fits inside and
    pads with black bars, ``stretch`` ignores the aspect ratio.
    """
    h, w = size
    ih, iw = image.shape[:2]
    nh, nw = fitted_size((ih, iw), size, mode)
    if (ih, iw) == (h, w):
        return image
    if mode == "stretch":
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if iw > w else cv2.INTER_LINEAR)
    scale = nw / iw
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if mode == "cover":
        top, left = (nh - h) // 2, (nw - w) // 2
        return resized[top:top + h, left:left + w]
    out = np.zeros((h, w) + image.shape[2:], dtype=image.dtype)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out


def blur(image: np.ndarray, strength: float = DEFAULT_BLUR) -> np.ndarray:
    """Gaussian blur whose sigma scales with the image (``strength`` per mille of the diagonal),
    so a thumbnail and a 4K photo look equally defocused."""
    h, w = image.shape[:2]
    sigma = max(strength * float(np.hypot(h, w)) / 1000.0, 0.5)
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)


def make_background(spec, image: np.ndarray, fit: str = "cover") -> np.ndarray | None:
    """Background for ``image`` (``float32`` ``H x W x 3`` in ``[0, 1]``).

    Args:
        spec: colour string, ``"blur"`` / ``"blur:STRENGTH"``, ``"transparent"`` (returns
            ``None``: the caller makes a cutout), or an RGB array (uint8 or float) to fit.
        image: the photo, ``float32`` ``H x W x 3``; needed for ``blur`` and the size.
        fit: how a background image is fitted (:data:`FIT_MODES`).
    Raises:
        ParameterError: an unknown spec.
    """
    h, w = image.shape[:2]
    if isinstance(spec, np.ndarray):
        bg = spec.astype(np.float32) / 255.0 if spec.dtype == np.uint8 else spec.astype(np.float32)
        return fit_image(bg, (h, w), fit)
    text = (spec or DEFAULT_BACKGROUND).strip()
    if text == "transparent":
        return None
    if text == "blur" or text.startswith("blur:"):
        strength = DEFAULT_BLUR
        if ":" in text:
            try:
                strength = float(text.split(":", 1)[1])
            except ValueError:
                raise ParameterError(f"blur strength must be a number, got {text!r}") from None
            if not 0 < strength <= 200:
                raise ParameterError(f"blur strength must lie in (0, 200], got {strength}")
        return blur(image, strength)
    color = np.asarray(parse_color(text), np.float32) / 255.0
    return np.broadcast_to(color, (h, w, 3))


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``alpha * foreground + (1 - alpha) * background`` as ``uint8`` RGB.

    Computed as ``background + alpha * (foreground - background)`` with OpenCV's float
    arithmetic (several times faster than numpy at video frame sizes, and it releases the
    GIL), then one rounding conversion.

    Args:
        foreground, background: ``float32`` RGB ``H x W x 3`` in ``[0, 1]`` (the background
            may be a broadcast view).
        alpha: ``float32`` ``H x W`` in ``[0, 1]``.
    Returns:
        ``uint8`` RGB ``H x W x 3``.
    """
    background = np.ascontiguousarray(background, dtype=np.float32)
    foreground = np.ascontiguousarray(foreground, dtype=np.float32)
    alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    a3 = cv2.merge([alpha, alpha, alpha])
    blended = cv2.add(background, cv2.multiply(a3, cv2.subtract(foreground, background)))
    return cv2.convertScaleAbs(blended, alpha=255.0)


def cutout(foreground: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``uint8`` RGBA: foreground colours with alpha (straight, not premultiplied)."""
    return np.dstack([to_uint8(foreground), to_uint8(alpha)])
