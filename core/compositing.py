"""Backgrounds and compositing: ``alpha * foreground + (1 - alpha) * background``.

A background is described by a string (``"#00ff00"``, ``"green"``, ``"blur"``,
``"blur:25"``, ``"transparent"``) or given as an image; :func:`make_background` turns
either into a ``float32`` ``H x W x 3`` array the size of the photo.
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import ImageColor

from core.images import to_uint8

DEFAULT_BACKGROUND = "#00ff00"  # the original composites over pure green
FIT_MODES = ("cover", "contain", "stretch")
DEFAULT_BLUR = 21.0  # Gaussian sigma as a fraction-of-1000 of the image diagonal (see blur)


def parse_color(spec: str) -> tuple[int, int, int]:
    """``"#RRGGBB"``, ``"#RGB"``, ``"RRGGBB"`` or a CSS colour name -> RGB bytes.

    Raises:
        ValueError: not a colour.
    """
    text = spec.strip()
    if len(text) in (3, 6) and all(c in "0123456789abcdefABCDEF" for c in text):
        text = "#" + text
    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError:
        raise ValueError(f"{spec!r} is not a colour (use #RRGGBB or a name such as 'green')") from None


def fit_image(image: np.ndarray, size: tuple[int, int], mode: str = "cover") -> np.ndarray:
    """Resize ``image`` to ``size = (height, width)``.

    ``cover`` fills the frame and crops the overflow (centred), ``contain`` fits inside and
    pads with black bars, ``stretch`` ignores the aspect ratio.
    """
    if mode not in FIT_MODES:
        raise ValueError(f"fit must be one of {FIT_MODES}, got {mode!r}")
    h, w = size
    ih, iw = image.shape[:2]
    if (ih, iw) == (h, w):
        return image
    if mode == "stretch":
        return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if iw > w else cv2.INTER_LINEAR)
    scale = max(h / ih, w / iw) if mode == "cover" else min(h / ih, w / iw)
    nw, nh = max(int(round(iw * scale)), 1), max(int(round(ih * scale)), 1)
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
        ValueError: an unknown spec.
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
                raise ValueError(f"blur strength must be a number, got {text!r}") from None
            if not 0 < strength <= 200:
                raise ValueError(f"blur strength must lie in (0, 200], got {strength}")
        return blur(image, strength)
    color = np.asarray(parse_color(text), np.float32) / 255.0
    return np.broadcast_to(color, (h, w, 3))


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``uint8`` RGB of ``alpha * foreground + (1 - alpha) * background`` (float inputs in [0, 1])."""
    a = alpha[:, :, None]
    return to_uint8(foreground * a + background * (1.0 - a))


def cutout(foreground: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``uint8`` RGBA: foreground colours with alpha (straight, not premultiplied)."""
    return np.dstack([to_uint8(foreground), to_uint8(alpha)])
