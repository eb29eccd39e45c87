"""Soft person mask -> trimap (sure foreground, sure background, unknown band).

Trimap convention: ``uint8`` ``H x W``, :data:`BACKGROUND` = 0, :data:`UNKNOWN` = 128,
:data:`FOREGROUND` = 255. FBA Matting and the JSON API of the original use a two-channel
form instead (channel 0 = sure background, channel 1 = sure foreground); convert with
:func:`to_two_channel` / :func:`from_two_channel`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from core.errors import ImageError, ParameterError
from core.images import DEFAULT_MAX_PIXELS, NPY_MAGIC, decode_image, load_npy

BACKGROUND, UNKNOWN, FOREGROUND = 0, 128, 255


# Fields a method sets when the caller sets them nowhere (``resolve``): the original's
# Detectron alternative erodes once and dilates five times.
METHOD_DEFAULTS = {"decided": {}, "soft": {},
                   "binary": {"erode_iterations": 1, "dilate_iterations": 5}}
METHODS = tuple(METHOD_DEFAULTS)


@dataclass(frozen=True)
class TrimapParams:
    """How a mask becomes a trimap.

    ``method="decided"`` (default): every pixel is decided, person where
    mask >= ``binary_threshold``; only a thin band along each person's outline is left
    unknown, ``band_fraction`` times the person's local thickness on each side (so the
    band follows each person's size: ~4 px on a 480 px close-up, 1 px on a person 60 px
    tall), clipped to ``[min_band, max_band]`` pixels. A wide unsure region of the
    mask is thus decided (person or not) instead of left for matting to average into a
    semi-transparent ghost, and a small person keeps their sure foreground (at least their
    innermost pixels, however thin they are). See :func:`decided_trimap`.
    ``method="soft"`` (the original service's): mask >= ``fg_threshold`` is foreground and
    ``unknown_threshold`` <= mask < ``fg_threshold`` unknown; the foreground is eroded and
    the unknown region dilated with an elliptical ``kernel_size`` kernel.
    ``method="binary"`` (the original's Detectron alternative): mask >= ``binary_threshold``
    is the person; erode it for sure foreground and dilate it for the band's outer edge.
    ``band_scale`` > 0 scales the iteration counts with the person's size instead
    (iterations = band_scale * sqrt(person area) / kernel_size), so the band is as wide,
    relative to the person, on a thumbnail as on a 4K photo.

    Raises:
        ParameterError: a value out of range (the message names the field and its range).
    """

    method: str = "decided"
    fg_threshold: float = 0.9
    unknown_threshold: float = 0.1
    binary_threshold: float = 0.5
    kernel_size: int = 5
    erode_iterations: int = 10
    dilate_iterations: int = 10
    band_scale: float = 0.0
    band_fraction: float = 0.035
    min_band: int = 1
    max_band: int = 25

    def __post_init__(self):
        if self.method not in METHOD_DEFAULTS:
            raise ParameterError(f"trimap method must be one of {list(METHODS)}, "
                                 f"got {self.method!r}")
        for name in ("fg_threshold", "unknown_threshold", "binary_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ParameterError(f"{name} must lie in [0, 1], got {value}")
        if self.unknown_threshold > self.fg_threshold:
            raise ParameterError("unknown_threshold must not exceed fg_threshold")
        if not 1 <= self.kernel_size <= 51:
            raise ParameterError(f"kernel_size must lie in [1, 51], got {self.kernel_size}")
        for name in ("erode_iterations", "dilate_iterations"):
            if not 0 <= getattr(self, name) <= 100:
                raise ParameterError(f"{name} must lie in [0, 100], got {getattr(self, name)}")
        if not 0.0 <= self.band_scale <= 1.0:
            raise ParameterError(f"band_scale must lie in [0, 1], got {self.band_scale}")
        if not 0.0 <= self.band_fraction <= 0.5:
            raise ParameterError(f"band_fraction must lie in [0, 0.5], got {self.band_fraction}")
        if not 0 <= self.min_band <= self.max_band <= 200:
            raise ParameterError(f"need 0 <= min_band <= max_band <= 200, got {self.min_band} "
                                 f"and {self.max_band}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, which are also the request parameters and ``TRIMAP_*`` settings."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def soft(cls, **overrides) -> "TrimapParams":
        """The original service's trimap: soft thresholds, 10 erosions and dilations."""
        return cls.resolve({"method": "soft", **overrides})

    @classmethod
    def binary(cls, **overrides) -> "TrimapParams":
        """The Detectron alternative's defaults: erode once, dilate five times."""
        return cls.resolve({"method": "binary", **overrides})

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """The trimap fields present in ``values`` (query parameters, environment: strings or
        numbers), converted to their types; other keys are left out, empty values too.

        Raises:
            ParameterError: a value that does not parse.
        """
        parsed = {}
        for f in fields(cls):
            raw = values.get(f.name)
            if raw is None or raw == "":
                continue
            kind = type(f.default)
            try:
                if kind is int and isinstance(raw, str):
                    parsed[f.name] = int(raw.strip())
                else:
                    parsed[f.name] = kind(raw)
            except (TypeError, ValueError):
                raise ParameterError(f"{f.name}: cannot read {raw!r} as "
                                     f"{'a whole number' if kind is int else 'a number'}") from None
        return parsed

    @classmethod
    def resolve(cls, *layers: Mapping[str, Any]) -> "TrimapParams":
        """Parameters from layers of explicitly set fields, later layers winning field by
        field (e.g. the service's configuration, then a request's fields). A field that no
        layer sets takes the chosen method's default (:data:`METHOD_DEFAULTS`), then the
        class default: a request's ``method=binary`` keeps a configured ``kernel_size`` but
        gets the binary variant's iteration counts unless those were configured too.

        Raises:
            ParameterError: an unknown field name, or a value out of range.
        """
        merged: dict[str, Any] = {}
        for layer in layers:
            unknown = set(layer) - set(cls.names())
            if unknown:
                raise ParameterError(f"unknown trimap parameter(s) {sorted(unknown)}; "
                                     f"valid: {list(cls.names())}")
            merged.update(layer)
        method = merged.get("method", cls.method)
        if method not in METHOD_DEFAULTS:
            raise ParameterError(f"trimap method must be one of {sorted(METHOD_DEFAULTS)}, "
                                 f"got {method!r}")
        return cls(**{**METHOD_DEFAULTS[method], **merged})


def _kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _scaled_iterations(params: TrimapParams, person: np.ndarray) -> tuple[int, int]:
    if params.band_scale <= 0:
        return params.erode_iterations, params.dilate_iterations
    steps = params.band_scale * np.sqrt(float(np.count_nonzero(person))) / params.kernel_size
    steps = int(np.clip(round(steps), 1, 100))
    return steps, steps


def local_radius(person: np.ndarray, work_side: int = 160) -> np.ndarray:
    """Local thickness of a binary mask: for each pixel of ``person`` the radius (in
    pixels) of the largest disc inside ``person`` that covers it (0 elsewhere).

    A person's torso and head give large radii, their limbs smaller ones, and a small
    person standing beside a big one keeps their own (the big one's discs do not reach
    into them), unlike any measure of a connected region's area. Computed by openings
    with discs of growing radius on a copy scaled to ``work_side`` (160) pixels (the radii are
    only used to size the band, to within a factor of ~1.4).

    Args:
        person: ``uint8`` or ``bool`` ``H x W``.
    Returns:
        ``float32`` ``H x W``.
    """
    person = (person > 0).astype(np.uint8)
    height, width = person.shape
    factor = max(1.0, max(height, width) / work_side)
    if factor > 1.0:
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        small = (cv2.resize(person.astype(np.float32), size, interpolation=cv2.INTER_AREA)
                 >= 0.5).astype(np.uint8)
    else:
        small = person
    deepest = float(cv2.distanceTransform(small, cv2.DIST_L2, 3).max()) if small.any() else 0.0
    radius = np.where(small > 0, 0.5, 0.0).astype(np.float32)
    r = 1
    while r <= deepest:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel)
        if not opened.any():
            break
        radius[opened > 0] = r
        r = max(r + 1, int(round(r * 1.4)))
    if factor > 1.0:
        radius = cv2.resize(radius, (width, height), interpolation=cv2.INTER_NEAREST) * factor
    return np.where(person > 0, radius, 0.0).astype(np.float32)


def decided_trimap(mask: np.ndarray, params: TrimapParams = TrimapParams()) -> np.ndarray:
    """Trimap with every pixel decided but a thin band along each person's outline.

    Person = ``mask >= params.binary_threshold``. Along the outline the band's half-width
    is ``band_fraction`` times the local thickness of the person there
    (:func:`local_radius`: the radius of the largest disc inside the person), clipped to
    ``[min_band, max_band]`` pixels: ~4 px along a close-up's head and shoulders at
    480 px, 1-2 px along a whole body's limbs or a person 60 px tall. Person pixels
    closer than that to the outline, and outside pixels closer than that to the person,
    are unknown; the rest is sure. A region thinner than its band keeps its innermost
    pixels (at least 0.75 of its greatest depth) as sure foreground, so no person is
    eroded away.

    Why: a segmenter's probability is unsure (0.1-0.9) over wide areas where it doubts
    (a second person, a desk, motion blur); leaving all of it to matting gives ghosts.
    The decision is the segmenter's (its 0.5 contour, the one its IoU is measured on);
    matting only places the edge within a few pixels of it, along real edges.

    Args:
        mask: ``float`` ``H x W`` in ``[0, 1]``.
    Returns:
        ``uint8`` ``H x W`` (0 / 128 / 255).
    """
    person = (mask >= params.binary_threshold).astype(np.uint8)
    trimap = np.zeros(mask.shape, np.uint8)
    if not person.any():
        return trimap
    width_map = np.clip(np.rint(params.band_fraction * local_radius(person)),
                        params.min_band, params.max_band).astype(np.float32)
    # distanceTransform: distance to the nearest zero pixel (DIST_L2 with a 3x3 mask,
    # accurate to a few % at these widths).
    inside = cv2.distanceTransform(person, cv2.DIST_L2, 3)
    # A pixel is sure when it is deeper than the band width of the outline near it; the
    # widths of the pixels around it stand for that (a max over a small neighbourhood).
    reach = int(params.max_band)
    local_width = cv2.dilate(np.where(person > 0, width_map, 0), _kernel(2 * min(reach, 8) + 1))
    sure_fg = (person > 0) & (inside > local_width)
    # Thin regions (no pixel deeper than their band): keep each one's ridge sure.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(person, connectivity=8)
    has_core = np.bincount(labels[sure_fg], minlength=count) > 0
    for region in np.flatnonzero(~has_core[1:]) + 1:
        x, y, w, h = stats[region, :4]
        inside_box = inside[y:y + h, x:x + w]
        own = labels[y:y + h, x:x + w] == region
        deepest = inside_box[own].max()
        sure_fg[y:y + h, x:x + w] |= own & (inside_box >= 0.75 * deepest)
    # Outside: the band reaches as far beyond the outline as the width of the person
    # pixels there; one distance transform per distinct width (a few values).
    near = np.zeros(mask.shape, bool)
    edge = (person > 0) & (inside <= params.max_band + 1)
    for value in np.unique(width_map[edge]):
        these = edge & (width_map == value)
        outside = cv2.distanceTransform((~these).astype(np.uint8), cv2.DIST_L2, 3)
        near |= outside <= value
    trimap[:] = UNKNOWN
    trimap[sure_fg] = FOREGROUND
    trimap[~near & (person == 0)] = BACKGROUND
    return trimap


def mask_to_trimap(mask: np.ndarray, params: TrimapParams = TrimapParams()) -> np.ndarray:
    """Turn a soft person mask into a trimap.

    Args:
        mask: ``float`` ``H x W`` in ``[0, 1]`` (probability of person).
        params: method, thresholds, kernel, iterations or band widths.
    Returns:
        ``uint8`` trimap ``H x W`` (0 / 128 / 255).
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be H x W, got shape {mask.shape}")
    if params.method == "decided":
        return decided_trimap(mask, params)
    kernel = _kernel(params.kernel_size)
    if params.method == "binary":
        person = (mask >= params.binary_threshold).astype(np.uint8)
        erode_n, dilate_n = _scaled_iterations(params, person)
        sure_fg = cv2.erode(person, kernel, iterations=erode_n) > 0
        reach = cv2.dilate(person, kernel, iterations=dilate_n) > 0
    else:
        fg = (mask >= params.fg_threshold).astype(np.uint8)
        unknown = ((mask >= params.unknown_threshold) & (fg == 0)).astype(np.uint8)
        erode_n, dilate_n = _scaled_iterations(params, mask >= 0.5)
        sure_fg = cv2.erode(fg, kernel, iterations=erode_n) > 0
        # The original marks everything outside (eroded fg + dilated unknown) as background;
        # we also keep the eroded-away foreground ring unknown, so a hard-edged mask (no
        # unknown pixels at some edge) never turns person pixels into sure background.
        reach = (fg > 0) | (cv2.dilate(unknown, kernel, iterations=dilate_n) > 0)
    trimap = np.full(mask.shape, UNKNOWN, dtype=np.uint8)
    trimap[sure_fg] = FOREGROUND
    trimap[~reach] = BACKGROUND
    return trimap


def has_person(trimap: np.ndarray) -> bool:
    """True when the trimap has sure foreground. A band with no sure foreground inside is a
    faint false detection (and gives the matting solver nothing to anchor alpha = 1)."""
    return bool(np.any(trimap == FOREGROUND))


def to_two_channel(trimap: np.ndarray) -> np.ndarray:
    """``uint8`` trimap -> ``float32`` ``H x W x 2`` (channel 0 = background, 1 = foreground)."""
    return np.stack([trimap == BACKGROUND, trimap == FOREGROUND], axis=-1).astype(np.float32)


def from_two_channel(two: np.ndarray) -> np.ndarray:
    """``H x W x 2`` (channel 0 = background, 1 = foreground, each 0/1) -> ``uint8`` trimap."""
    if two.ndim != 3 or two.shape[2] != 2:
        raise ParameterError(f"two-channel trimap must be H x W x 2, got shape {list(two.shape)}",
                             code="invalid_trimap")
    scale = 255.0 if two.max() > 1 else 1.0
    trimap = np.full(two.shape[:2], UNKNOWN, dtype=np.uint8)
    trimap[two[:, :, 0] / scale >= 0.5] = BACKGROUND
    trimap[two[:, :, 1] / scale >= 0.5] = FOREGROUND
    return trimap


def normalize_trimap(trimap: np.ndarray) -> np.ndarray:
    """Accept a user's trimap: one channel (0 / 128 / 255, any grey in between is unknown),
    an RGB image of such a trimap, or the two-channel form.

    Returns:
        ``uint8`` ``H x W`` (0 / 128 / 255).
    Raises:
        ParameterError (``invalid_trimap``): any other shape.
    """
    trimap = np.asarray(trimap)
    if trimap.ndim == 3 and trimap.shape[2] == 2:
        return from_two_channel(trimap.astype(np.float32))
    if trimap.ndim == 3 and trimap.shape[2] in (3, 4):
        trimap = trimap[:, :, 0]
    if trimap.ndim != 2 or trimap.size == 0:
        raise ParameterError(f"trimap must be H x W, H x W x 2 or an image, got shape "
                             f"{list(trimap.shape)}", code="invalid_trimap")
    if trimap.dtype != np.uint8:
        values = trimap.astype(np.float32)
        if not np.isfinite(values).all():
            raise ParameterError("trimap contains NaN or infinite values", code="invalid_trimap")
        trimap = np.clip(values * (255.0 if values.max() <= 1.0 else 1.0), 0, 255)
        trimap = np.rint(trimap).astype(np.uint8)
    out = np.full(trimap.shape, UNKNOWN, dtype=np.uint8)
    # JPEG-compressed trimaps drift a little: allow a margin at both ends.
    out[trimap <= 10] = BACKGROUND
    out[trimap >= 245] = FOREGROUND
    return out


def decode_trimap(data: bytes, shape: tuple[int, int] | None = None,
                  max_pixels: int | None = None) -> np.ndarray:
    """A user's trimap file (PNG/JPEG/... image, or ``.npy`` of any form
    :func:`normalize_trimap` takes) as a ``uint8`` trimap.

    Args:
        data: the file's bytes.
        shape: ``(height, width)`` it must have (the photo's), when given.
        max_pixels: size limit, as for images.
    Raises:
        ParameterError (``invalid_trimap``): unreadable, the wrong shape or size.
    """
    if not data:
        raise ParameterError("trimap is empty (0 bytes)", code="invalid_trimap")
    if data[:6] == NPY_MAGIC:
        try:
            raw = load_npy(data, "trimap")
        except ImageError as exc:
            raise ParameterError(exc.message, code="invalid_trimap") from None
    else:
        try:
            raw = decode_image(data, max_pixels or DEFAULT_MAX_PIXELS)
        except ImageError as exc:
            raise ParameterError(f"trimap: {exc.message}", code="invalid_trimap") from None
    trimap = normalize_trimap(raw)
    if shape is not None and trimap.shape != tuple(shape):
        raise ParameterError(f"trimap is {trimap.shape[1]}x{trimap.shape[0]} but the image is "
                             f"{shape[1]}x{shape[0]}", code="invalid_trimap")
    return trimap


def unknown_bbox(trimap: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """Bounding box of the unknown band grown by ``margin`` pixels (clipped to the image),
    as ``(rows, cols)`` slices; ``None`` when there is no unknown pixel. Backends solve
    inside it, so their cost follows the band, not the image."""
    rows = np.flatnonzero(np.any(trimap == UNKNOWN, axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(np.any(trimap == UNKNOWN, axis=0))
    h, w = trimap.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, w)))


def impose_sure_regions(alpha: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Set alpha to exactly 1 on the trimap's sure foreground and 0 on its sure background,
    whatever a backend's numerics (resizing, solver tolerance) left there. In place.

    Args:
        alpha: ``float32`` ``H x W`` in ``[0, 1]`` (modified and returned).
        trimap: ``uint8`` ``H x W`` (0 / 128 / 255).
    """
    alpha[trimap == FOREGROUND] = 1.0
    alpha[trimap == BACKGROUND] = 0.0
    return alpha


def band_prior(trimap: np.ndarray) -> np.ndarray:
    """Distance-ramp alpha prior from a trimap.

    Args:
        trimap: ``uint8`` ``H x W`` (0 / 128 / 255).
    Returns:
        ``float32`` ``H x W`` in ``[0, 1]``: 0 / 1 on the sure regions, and in the unknown
        band the relative distance ``d_bg / (d_bg + d_fg)``. A band with no sure
        foreground (or background) anywhere gets 0.5 where the other anchor is missing.
    """
    prior = (trimap == FOREGROUND).astype(np.float32)
    unknown = trimap == UNKNOWN
    if not unknown.any():
        return prior
    has_fg, has_bg = bool((trimap == FOREGROUND).any()), bool((trimap == BACKGROUND).any())
    if not (has_fg and has_bg):
        prior[unknown] = 0.5
        return prior
    # distanceTransform measures the distance to the nearest zero pixel.
    d_bg = cv2.distanceTransform((trimap != BACKGROUND).astype(np.uint8), cv2.DIST_L2, 3)
    d_fg = cv2.distanceTransform((trimap != FOREGROUND).astype(np.uint8), cv2.DIST_L2, 3)
    ramp = d_bg / np.maximum(d_bg + d_fg, 1e-6)
    prior[unknown] = ramp[unknown]
    return prior
