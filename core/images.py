"""Image decoding, encoding and the array convention, in one place.

Everything that enters the pipeline passes through :func:`decode_image` (bytes) or
:func:`image_from_array` (nested lists / arrays from the JSON API) and leaves as
``uint8`` RGB ``H x W x 3``. Both services, the CLI and the video code use these.
"""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageError, ParameterError

# 50 megapixels: larger than any phone photo, small enough that a request cannot make
# the service allocate gigabytes. Services pass their own configured limit.
DEFAULT_MAX_PIXELS = 50_000_000
NPY_MAGIC = b"\x93NUMPY"


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} = {width * height} pixels, "
            f"more than the limit of {max_pixels}"
        )


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file (any format Pillow reads) or ``.npy`` bytes.

    EXIF orientation is applied; grey, palette, RGBA, CMYK and 16-bit images become RGB.

    Returns:
        ``uint8`` array ``H x W x 3``.
    Raises:
        ImageError: empty, corrupt, unsupported or too large input.
    """
    if not data:
        raise ImageError("image is empty (0 bytes)")
    if data[:6] == NPY_MAGIC:
        return image_from_array(load_npy(data), max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as img:
            _check_size(img.width, img.height, max_pixels)
            img.load()
            img = ImageOps.exif_transpose(img)
            return pil_to_rgb(img)
    except UnidentifiedImageError:
        raise ImageError("data is not an image in a format we can read") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}") from None


def load_npy(data: bytes, what: str = "image") -> np.ndarray:
    """An array from ``.npy`` bytes (no pickles).

    Raises:
        ImageError: corrupt or truncated data, or an object array.
    """
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageError(f"corrupt .npy {what}: {exc}") from None


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any Pillow image mode to ``uint8`` RGB ``H x W x 3``."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / 32-bit grey: scale the used range to 8 bits instead of clipping.
        grey = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or grey.max() > 255 else 255.0
        if img.mode == "F":
            top = 1.0 if grey.max() <= 1.0 else max(float(grey.max()), 1.0)
        grey = np.clip(grey / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels carry arbitrary colour; show them as white, as viewers do.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def image_from_array(array, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Validate an array-like image (nested lists from JSON, or numpy) as ``uint8`` RGB.

    Accepts ``H x W`` (grey), ``H x W x 1``, ``H x W x 3`` and ``H x W x 4`` (alpha dropped);
    values in ``[0, 255]``, or floats in ``[0, 1]``.
    """
    try:
        arr = np.asarray(array)
    except (ValueError, TypeError) as exc:
        raise ImageError(f"image is not a rectangular array: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ImageError("image must be a rectangular array of numbers (H x W x 3)")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageError(f"image must have shape H x W x 3, got {list(arr.shape)}")
    _check_size(arr.shape[1], arr.shape[0], max_pixels)
    if arr.dtype == np.uint8:
        out = arr
    else:
        if not np.isfinite(arr).all():
            raise ImageError("image contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 255:
            raise ImageError(f"image values must lie in [0, 255], got [{lo:g}, {hi:g}]")
        if np.issubdtype(arr.dtype, np.floating) and hi <= 1.0:
            arr = arr * 255.0
        out = np.rint(arr).astype(np.uint8)
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        out = out[:, :, :3]
    return np.ascontiguousarray(out)


def to_float(image: np.ndarray) -> np.ndarray:
    """``uint8`` -> ``float32`` in ``[0, 1]``."""
    return image.astype(np.float32) / np.float32(255.0)  # exact 1.0 for 255


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``float`` in ``[0, 1]`` -> ``uint8`` (rounded, clipped)."""
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def alpha_to_uint16(alpha: np.ndarray) -> np.ndarray:
    """Alpha in ``[0, 1]`` -> ``uint16`` (16-bit PNG keeps 1/65535 steps)."""
    return np.clip(alpha * 65535.0 + 0.5, 0, 65535).astype(np.uint16)


IMAGE_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg",
                 "webp": "image/webp", "npy": "application/x-npy"}


def encode_image(array: np.ndarray, fmt: str = "png", quality: int = 92,
                 png_compression: int = 1) -> bytes:
    """Encode ``H x W`` (grey, uint8 or uint16), ``H x W x 2`` (grey + alpha, uint8),
    ``H x W x 3`` RGB or ``H x W x 4`` RGBA.

    ``fmt`` is one of :data:`IMAGE_FORMATS`. PNG uses a low zlib level by default: the
    output is a few percent larger and several times faster to write.
    Raises:
        ParameterError: a format that cannot hold this array (JPEG with alpha or 16 bits).
        ValueError: an array no encoder takes (a bug in the caller).
    """
    fmt = fmt.lower()
    if fmt not in IMAGE_FORMATS:
        raise ParameterError(f"unknown format {fmt!r}; choose one of {sorted(set(IMAGE_FORMATS))}")
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        return buf.getvalue()
    if array.ndim == 3 and array.shape[2] == 4 and fmt in ("jpeg", "jpg"):
        raise ParameterError("JPEG cannot store transparency; use format=png or webp")
    if array.dtype == np.uint16 and fmt != "png":
        raise ParameterError("16-bit output needs format=png (or npy)")
    if array.ndim == 3 and array.shape[2] == 2:  # grey + alpha: only PNG holds it
        if fmt != "png":
            raise ParameterError("a two-channel image needs format=png (or npy)")
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array), "LA").save(buf, "PNG", compress_level=png_compression)
        return buf.getvalue()
    # OpenCV encodes 2-4x faster than Pillow; it wants BGR(A) channel order.
    if array.ndim == 3 and array.shape[2] == 3:
        bgr = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        bgr = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    else:
        bgr = array
    if fmt == "png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    else:
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    ok, encoded = cv2.imencode("." + ("jpg" if fmt == "jpeg" else fmt), bgr, params)
    if not ok:
        raise ValueError(f"could not encode a {array.shape} {array.dtype} array as {fmt}")
    return encoded.tobytes()


def read_image_file(path) -> np.ndarray:
    """Read an image file from disk as ``uint8`` RGB (same rules as :func:`decode_image`)."""
    with open(path, "rb") as fh:
        return decode_image(fh.read())


def format_for_path(path) -> str:
    """Output format from a file name's extension (``.png`` -> ``png``...)."""
    suffix = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else ""
    if suffix not in IMAGE_FORMATS:
        raise ParameterError(f"cannot tell the image format of {path!r}; use .png, .jpg, .webp or .npy")
    return "jpeg" if suffix == "jpg" else suffix
