"""The wire format: images travel as files (PNG, JPEG, ... or ``.npy``), never as JSON lists.

A request carries its image as a multipart field (``-F image=@photo.jpg``) or as the raw
body (``--data-binary @photo.jpg``). Parameters come from the query string or form fields.
Responses are image bytes with the right ``Content-Type``; metadata goes in ``X-`` headers.
"""
from __future__ import annotations

import io

import numpy as np
from flask import Request, Response, current_app, request

from core.errors import ParameterError
from core.images import IMAGE_FORMATS, decode_image, encode_image, image_from_array, to_uint8
from core.pipeline import Person, Segmentation
from service_common.errors import APIError


def params() -> dict[str, str]:
    """Query-string and form parameters, merged.

    Raises:
        ParameterError (``duplicate_parameter``): a parameter given more than once with
            different values (twice in the query, or in both the query and the form): which
            one was meant is not for us to guess.
    """
    merged: dict[str, str] = {}
    for source in (request.args, request.form):
        for name, values in source.lists():
            for value in values:
                if name in merged and merged[name] != value:
                    raise ParameterError(f"parameter {name!r} given more than once, with "
                                         f"different values ({merged[name]!r:.40}, {value!r:.40})",
                                         code="duplicate_parameter")
                merged[name] = value
    return merged


def choice_param(values: dict, name: str, choices, default: str) -> str:
    """``values[name]`` (``default`` when absent or empty), one of ``choices``.

    Raises:
        ParameterError: any other value (the message lists the choices).
    """
    value = values.get(name) or default
    if value not in choices:
        raise ParameterError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def int_param(values: dict, name: str, default: int | None, choices=None,
              minimum: int | None = None) -> int | None:
    """``values[name]`` as a whole number (``default`` when absent or empty).

    Raises:
        ParameterError: not a whole number, not one of ``choices``, or below ``minimum``.
    """
    raw = values.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ParameterError(f"{name} must be a whole number, got {raw!r}") from None
    if choices is not None and value not in choices:
        raise ParameterError(f"{name} must be one of {list(choices)}, got {value}")
    if minimum is not None and value < minimum:
        raise ParameterError(f"{name} must be at least {minimum}, got {value}")
    return value

def uploaded_bytes(field: str, req: Request | None = None, required: bool = True) -> bytes | None:
    """Bytes of a multipart file ``field``, or the raw body when the request is not a form.

    Raises:
        APIError 400: ``required`` and nothing was sent.
    """
    req = req or request
    if field in req.files:
        return req.files[field].read()
    if req.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        if required:
            raise APIError(f"missing file field {field!r} (send it as -F {field}=@FILE)",
                           code="missing_field")
        return None
    if field != "image":  # only the main image may come as the raw body
        return None
    data = req.get_data(cache=False)
    if not data and required:
        raise APIError("no image sent: post a file as -F image=@FILE or as the raw body",
                       code="missing_field")
    return data or None


def max_pixels() -> int:
    return current_app.config["MAX_PIXELS"]


def read_image(field: str = "image", required: bool = True) -> np.ndarray | None:
    """Decode the request's image ``field`` as ``uint8`` RGB (400 on anything else)."""
    data = uploaded_bytes(field, required=required)
    if data is None:
        return None
    return decode_image(data, max_pixels(), field=None if field == "image" else field)


def json_body() -> dict:
    """The JSON object of a compatibility-API request (400 when it is not one)."""
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise APIError("body must be a JSON object such as {\"image\": [[[r, g, b], ...]]}",
                       code="invalid_json")
    return body


def json_image(body: dict, key: str = "image") -> np.ndarray:
    """A nested-list image from a JSON body (400 when missing or malformed)."""
    if key not in body:
        raise APIError(f"JSON body has no {key!r} field", code="missing_field")
    return image_from_array(body[key], max_pixels())


def output_format(values: dict, default: str = "png", allowed=None) -> str:
    """The ``format`` parameter, checked against ``allowed`` (default: the image formats)."""
    allowed = tuple(allowed or sorted(set(IMAGE_FORMATS)))
    fmt = (values.get("format") or default).lower()
    if fmt not in allowed:
        raise ParameterError(f"format must be one of {list(allowed)}, got {fmt!r}")
    return "jpeg" if fmt == "jpg" else fmt


def check_params(values: dict, known, file_fields=("image", "trimap")) -> None:
    """Refuse parameters nobody reads: a typo would otherwise silently do nothing.

    Raises:
        APIError (``not_a_file``): a file field sent as text (``-F image=photo.jpg``
            without the ``@``).
        ParameterError (``unknown_parameter``): names the unknown ones and the valid ones.
    """
    for name in file_fields:
        if name in values:
            raise APIError(f"{name!r} came as a text field; send the file itself "
                           f"(curl -F {name}=@FILE)", code="not_a_file")
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; valid: {sorted(known)}",
                             code="unknown_parameter")


def image_response(array: np.ndarray, fmt: str = "png", headers: dict | None = None,
                   status: int = 200) -> Response:
    """Encode ``array`` and wrap it in a response with the right content type."""
    response = Response(encode_image(array, fmt), status=status, mimetype=IMAGE_FORMATS[fmt])
    h, w = array.shape[:2]
    response.headers["X-Image-Size"] = f"{w}x{h}"
    for key, value in (headers or {}).items():
        response.headers[key] = str(value)
    return response


def people_header(people) -> str:
    """The ``X-People`` header: JSON, one object per person (box, score, area, selected)."""
    import json

    return json.dumps([p.as_dict() for p in people], separators=(",", ":"))


# --------------------------------------------------------------------- between services

NPZ_MIMETYPE = "application/x-segmentation-npz"


def encode_segmentation(segmentation: Segmentation) -> bytes:
    """The segmentation service's self-describing answer: an ``.npz`` with named arrays
    ``trimap`` (``uint8`` ``H x W``, 0 / 128 / 255), ``mask`` (``uint8`` ``H x W``, the soft
    mask x 255), ``boxes`` (``int32`` ``N x 4``: x0, y0, x1, y1), ``scores`` (``float32``
    ``N``) and ``areas`` (``int64`` ``N``), one row per person. Uncompressed: on loopback
    the bytes cost less than zlib."""
    people = segmentation.people
    arrays = {
        "trimap": np.ascontiguousarray(segmentation.trimap, np.uint8),
        "boxes": np.array([p.box for p in people], np.int32).reshape(-1, 4),
        "scores": np.array([p.score for p in people], np.float32),
        "areas": np.array([p.area for p in people], np.int64),
        "selected": np.array([p.selected for p in people], bool),
    }
    if segmentation.mask is not None:
        arrays["mask"] = to_uint8(segmentation.mask)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def decode_segmentation(data: bytes, shape: tuple[int, int]) -> Segmentation:
    """Read :func:`encode_segmentation`'s bytes back; ``shape`` is the image's ``(H, W)``.

    Raises:
        ValueError: not such a payload, or arrays of the wrong shape.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"not a segmentation payload: {exc}") from None
    trimap = arrays.get("trimap")
    if trimap is None or trimap.shape != tuple(shape) or trimap.dtype != np.uint8:
        raise ValueError(f"payload trimap {getattr(trimap, 'shape', None)} does not match "
                         f"the image {tuple(shape)}")
    mask = arrays.get("mask")
    if mask is not None:
        if mask.shape != tuple(shape):
            raise ValueError(f"payload mask {mask.shape} does not match the image {tuple(shape)}")
        mask = mask.astype(np.float32) / np.float32(255.0)
    n = len(arrays.get("boxes", ()))
    selected = arrays.get("selected", np.ones(n, bool))
    people = [Person(tuple(int(v) for v in box), float(score), int(area), bool(chosen))
              for box, score, area, chosen in zip(arrays.get("boxes", ()), arrays.get("scores", ()),
                                                  arrays.get("areas", ()), selected)]
    return Segmentation(trimap, mask, people)
