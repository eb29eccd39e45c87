"""Image decoding, encoding and the array convention, in one place.

Everything that enters the pipeline passes through :func:`decode_image` (bytes) or
:func:`image_from_array` (nested lists / arrays from the JSON API) and leaves as
``uint8`` RGB ``H x W x 3``. Both services, the CLI and the video code use these.

Colour: the pipeline works in sRGB. A file with an embedded ICC profile (Adobe RGB,
Display P3, a CMYK press profile...) is converted to sRGB on decoding with Pillow's
ImageCms (LittleCMS, perceptual intent), as a colour-managed viewer shows it; files
without one are taken as sRGB. Outputs are sRGB: colour PNG, JPEG and WebP files say so
(an ``sRGB`` chunk in PNG, LittleCMS's sRGB ICC profile in JPEG and WebP); the source's
profile is not carried over. Grey outputs (alpha, trimap, mask) and ``.npy`` are untagged.
"""
from __future__ import annotations

import io
import logging
import re
import struct
import zlib
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from core.errors import ImageError, ParameterError, TooManyPixels

log = logging.getLogger(__name__)

# 50 megapixels: larger than any phone photo, small enough that a request cannot make
# the service allocate gigabytes. Services pass their own configured limit.
DEFAULT_MAX_PIXELS = 50_000_000
NPY_MAGIC = b"\x93NUMPY"


def _check_size(width: int, height: int, max_pixels: int, what: str = "image") -> None:
    if width < 1 or height < 1:
        raise ImageError(f"{what} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise TooManyPixels(what, width * height, max_pixels, width, height)


# The formats most photos come in, named in the message for a file we cannot read (the
# others Pillow opens are counted, not listed: there are some forty).
_COMMON_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "AVIF": "AVIF", "HEIF": "HEIF",
                   "TIFF": "TIFF", "BMP": "BMP", "GIF": "GIF"}


@lru_cache(maxsize=1)
def readable_formats() -> str:
    """The image formats :func:`decode_image` reads, for messages: the common ones this
    Pillow opens by name, how many others, and ``.npy``."""
    Image.init()  # registers every plugin
    common = [label for name, label in _COMMON_FORMATS.items() if name in Image.OPEN]
    others = len(set(Image.OPEN) - set(_COMMON_FORMATS))
    return (f"{', '.join(common)} and {others} other formats Pillow reads, or a .npy array"
            if others else f"{', '.join(common)}, or a .npy array")


def _bomb_pixels(exc: Exception) -> int | None:
    """The pixel count in Pillow's decompression-bomb message, when it says one."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else None


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                 field: str | None = None) -> np.ndarray:
    """Decode an image file (any format Pillow reads) or ``.npy`` bytes.

    EXIF orientation is applied; grey, palette, RGBA, CMYK and 16-bit images become RGB;
    an embedded ICC profile is applied (pixels converted to sRGB, see :func:`to_srgb`).

    Args:
        data: the file's bytes.
        max_pixels: the most pixels accepted; checked from the header, before decoding.
        field: the request field the file came in, named in error messages (``None``:
            the photo itself).
    Returns:
        ``uint8`` sRGB array ``H x W x 3``.
    Raises:
        TooManyPixels: more pixels than ``max_pixels`` (or than Pillow's own
            decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS`` x 2).
        ImageError: empty, corrupt or unsupported input.
    """
    what = "image" if field is None else f"the {field!r} image"
    if not data:
        raise ImageError(f"{what} is empty (0 bytes)")
    if data[:6] == NPY_MAGIC:
        return image_from_array(load_npy(data), max_pixels, what)
    try:
        with Image.open(io.BytesIO(data)) as img:
            _check_size(img.width, img.height, max_pixels, what)
            img.load()
            img = ImageOps.exif_transpose(img)  # keeps info["icc_profile"] for pil_to_rgb
            return pil_to_rgb(img)
    except UnidentifiedImageError:
        where = "data" if field is None else f"the {field!r} file"
        raise ImageError(f"{where} is not an image in a format we can read; send "
                         f"{readable_formats()}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's decompression-bomb check runs in Image.open, before we see the size: it
        # refuses more than MAX_IMAGE_PIXELS x 2 pixels (and warns above MAX_IMAGE_PIXELS,
        # an exception here only under a filter that makes errors of warnings). The same
        # refusal as ours, with the size and the lower of the two limits.
        pixels = _bomb_pixels(exc)
        if pixels is not None and pixels <= max_pixels:  # a max_pixels above Pillow's own
            pillow_limit = (Image.MAX_IMAGE_PIXELS or 0) * (1 if isinstance(exc, Warning) else 2)
            raise TooManyPixels(what, pixels, pillow_limit, decoder_limit=True) from None
        raise TooManyPixels(what, pixels, max_pixels) from None
    except (OSError, SyntaxError) as exc:
        raise ImageError(f"corrupt or truncated {what}: {exc}") from None


def load_npy(data: bytes, what: str = "image") -> np.ndarray:
    """An array from ``.npy`` bytes (no pickles).

    Raises:
        ImageError: corrupt or truncated data, or an object array.
    """
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageError(f"corrupt .npy {what}: {exc}") from None


@lru_cache(maxsize=1)
def srgb_profile() -> ImageCms.ImageCmsProfile:
    """LittleCMS's built-in sRGB profile (the pipeline's colour space)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


# Modes ImageCms converts, with the profile colour space each needs and the mode out.
_CMS_MODES = {"RGB": ("RGB", "RGB"), "RGBA": ("RGB", "RGBA"), "RGBX": ("RGB", "RGB"),
              "CMYK": ("CMYK", "RGB"), "L": ("GRAY", "RGB")}
# Every 51st level of each channel: 216 colours to tell an sRGB-like profile from others.
_PROBE = np.stack(np.meshgrid(*[np.arange(0, 256, 51, dtype=np.uint8)] * 3, indexing="ij"),
                  axis=-1).reshape(1, -1, 3)


@lru_cache(maxsize=16)
def _transform_to_srgb(icc: bytes, mode: str):
    """``(transform, None)`` from profile ``icc`` to sRGB for ``mode`` images, or
    ``(None, why)``: ``why`` is ``None`` when the profile is sRGB already (it would move no
    colour by more than 1 level), else a message. Cached: a batch of photos from one
    camera carries one profile, and building a transform costs tens of milliseconds."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError) as exc:
        return None, f"ignoring an unreadable ICC colour profile ({exc})"
    space, out_mode = _CMS_MODES[mode]
    profile_space = source.profile.xcolor_space.strip()
    if profile_space != space:
        return None, f"ignoring an ICC profile for {profile_space} pixels on a {mode} image"
    try:
        # NOCACHE: a cached transform is shared by the services' request threads.
        transform = ImageCms.buildTransform(source, srgb_profile(), mode, out_mode,
                                            ImageCms.Intent.PERCEPTUAL, ImageCms.Flags.NOCACHE)
    except ImageCms.PyCMSError as exc:
        return None, f"cannot use the image's ICC colour profile ({exc})"
    if space == "RGB":
        probe = Image.fromarray(_PROBE, "RGB").convert(mode)
        moved = np.abs(np.asarray(transform.apply(probe), np.int16)[..., :3]
                       - _PROBE.astype(np.int16)).max()
        if moved <= 1:  # an sRGB profile (most phone photos): nothing to convert
            return None, None
    return transform, None


def to_srgb(img: Image.Image) -> Image.Image:
    """Apply ``img``'s embedded ICC profile: its pixels converted to sRGB.

    Args:
        img: a loaded Pillow image in any mode; ``img.info["icc_profile"]`` is the profile.
    Returns:
        The image converted (``RGB``, or ``RGBA`` keeping alpha) with the profile removed
        from ``info``; ``img`` itself when it has no profile, when the profile is sRGB
        already (converting would move nothing by more than 1 level), or when the profile
        cannot be used (unreadable, or for another colour space than the pixels'; logged
        as a warning, and the pixels are then read as sRGB as viewers do). 16-bit and
        float grey images keep their values (ImageCms converts 8-bit modes only).
    """
    icc = img.info.get("icc_profile")
    if not icc:
        return img
    if img.mode in ("P", "PA"):  # palette colours are in the profile's space too
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    alpha = None
    if img.mode == "LA":
        alpha = img.getchannel("A")
        img = img.convert("L")
    if img.mode not in _CMS_MODES:
        log.debug("ICC profile not applied to a %s image", img.mode)
        return img
    transform, problem = _transform_to_srgb(bytes(icc), img.mode)
    if transform is None:
        if problem:
            log.warning("%s; reading the image as sRGB", problem)
        return img if alpha is None else Image.merge("LA", (img, alpha))
    converted = transform.apply(img)
    if alpha is not None:
        converted.putalpha(alpha)
    converted.info = {k: v for k, v in img.info.items() if k != "icc_profile"}
    return converted


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any Pillow image mode to ``uint8`` RGB ``H x W x 3``, applying an embedded
    ICC profile first (:func:`to_srgb`)."""
    img = to_srgb(img)
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


def image_from_array(array, max_pixels: int = DEFAULT_MAX_PIXELS,
                     what: str = "image") -> np.ndarray:
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
    _check_size(arr.shape[1], arr.shape[0], max_pixels, what)
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
    if array.ndim == 3 and array.dtype == np.uint8:  # colour pictures; grey ones are data
        return tag_srgb(encoded.tobytes(), fmt, array.shape[1], array.shape[0], array.shape[2] == 4)
    return encoded.tobytes()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) % 2)


def tag_srgb(data: bytes, fmt: str, width: int, height: int, has_alpha: bool = False) -> bytes:
    """Mark an encoded colour image as sRGB (OpenCV writes no colour information).

    PNG gets an ``sRGB`` chunk (perceptual) after ``IHDR``; JPEG an ``APP2 ICC_PROFILE``
    segment after ``SOI``; WebP an ``ICCP`` chunk (a simple-format file becomes the
    extended format, whose ``VP8X`` header needs ``width``, ``height`` and ``has_alpha``).
    Other formats, and input that does not look like the format, come back unchanged.
    """
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt == "png" and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        end = 8 + 12 + struct.unpack(">I", data[8:12])[0]
        return data[:end] + _png_chunk(b"sRGB", b"\0") + data[end:]
    icc = srgb_profile().tobytes()
    if fmt == "jpeg" and data[:2] == b"\xff\xd8" and len(icc) < 65000:
        body = b"ICC_PROFILE\0\x01\x01" + icc
        return data[:2] + b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body + data[2:]
    if fmt == "webp" and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        first = data[12:16]
        if first == b"VP8X":
            flags = data[20] | 0x20
            vp8x = data[12:20] + bytes([flags]) + data[21:30]
            rest = data[30:]
        elif first in (b"VP8 ", b"VP8L"):
            flags = 0x20 | (0x10 if has_alpha else 0)
            vp8x = _riff_chunk(b"VP8X", bytes([flags, 0, 0, 0])
                               + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))
            rest = data[12:]
        else:
            return data
        chunks = vp8x + _riff_chunk(b"ICCP", icc) + rest
        return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks
    return data


def read_image_file(path) -> np.ndarray:
    """Read an image file from disk as ``uint8`` RGB (same rules as :func:`decode_image`)."""
    with open(path, "rb") as fh:
        return decode_image(fh.read())


def format_for_path(path) -> str:
    """Output format from a file name's extension (``.png`` -> ``png``...)."""
    suffix = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else ""
    if suffix not in IMAGE_FORMATS:
        # str(): a Path's repr would show users "PosixPath('...')"
        raise ParameterError(f"cannot tell the image format of '{path}' from its extension; "
                             "use .png, .jpg, .webp or .npy")
    return "jpeg" if suffix == "jpg" else suffix
