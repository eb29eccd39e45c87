"""The wire format: images travel as files (PNG, JPEG, ... or ``.npy``), never as JSON lists.

A request carries its image as a multipart field (``-F image=@photo.jpg``) or as the raw
body (``--data-binary @photo.jpg``). Parameters come from the query string or form fields.
Responses are image bytes with the right ``Content-Type``; metadata goes in ``X-`` headers.
"""
from __future__ import annotations

import numpy as np
from flask import Request, Response, current_app, request

from core.images import IMAGE_FORMATS, decode_image, encode_image, image_from_array
from service_common.errors import APIError

JSON_TYPES = ("application/json",)


def params() -> dict[str, str]:
    """Query-string and form parameters merged (form wins)."""
    merged = dict(request.args.items())
    merged.update(request.form.items())
    return merged


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
            raise APIError(400, f"missing file field {field!r} (send it as -F {field}=@FILE)",
                           "missing_field")
        return None
    if field != "image":  # only the main image may come as the raw body
        return None
    data = req.get_data(cache=False)
    if not data and required:
        raise APIError(400, "no image sent: post a file as -F image=@FILE or as the raw body",
                       "missing_field")
    return data or None


def max_pixels() -> int:
    return current_app.config["MAX_PIXELS"]


def read_image(field: str = "image", required: bool = True) -> np.ndarray | None:
    """Decode the request's image ``field`` as ``uint8`` RGB (400 on anything else)."""
    data = uploaded_bytes(field, required=required)
    if data is None:
        return None
    return decode_image(data, max_pixels())


def json_body() -> dict:
    """The JSON object of a compatibility-API request (400 when it is not one)."""
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise APIError(400, "body must be a JSON object such as {\"image\": [[[r, g, b], ...]]}",
                       "invalid_json")
    return body


def json_image(body: dict, key: str = "image") -> np.ndarray:
    """A nested-list image from a JSON body (400 when missing or malformed)."""
    if key not in body:
        raise APIError(400, f"JSON body has no {key!r} field", "missing_field")
    return image_from_array(body[key], max_pixels())


def output_format(values: dict, default: str = "png") -> str:
    fmt = (values.get("format") or default).lower()
    if fmt not in IMAGE_FORMATS:
        raise APIError(400, f"format must be one of {sorted(set(IMAGE_FORMATS))}, got {fmt!r}",
                       "invalid_parameter")
    return "jpeg" if fmt == "jpg" else fmt


def image_response(array: np.ndarray, fmt: str = "png", headers: dict | None = None,
                   status: int = 200) -> Response:
    """Encode ``array`` and wrap it in a response with the right content type."""
    try:
        body = encode_image(array, fmt)
    except ValueError as exc:
        raise APIError(400, str(exc), "invalid_parameter") from None
    response = Response(body, status=status, mimetype=IMAGE_FORMATS[fmt])
    h, w = array.shape[:2]
    response.headers["X-Image-Size"] = f"{w}x{h}"
    for key, value in (headers or {}).items():
        response.headers[key] = str(value)
    return response


def is_json_request() -> bool:
    return request.mimetype in JSON_TYPES
