"""The errors a caller can cause, in one hierarchy.

:class:`UserError` and its subclasses mean "what you gave us is wrong, and here is how to
fix it": the services answer them with a 4xx JSON body (``status`` and ``code`` below),
the command lines with a message and a non-zero exit. Every other exception is a bug or
an outage: the services log its traceback and answer 500 with a request id.

:class:`UserError` derives from ``ValueError`` so that library callers who catch
``ValueError`` keep working; the services never map a plain ``ValueError`` to a 4xx (a
numpy broadcast error inside a backend is our fault, not the caller's).
"""
from __future__ import annotations


class UserError(ValueError):
    """A caller's mistake. ``status`` is the HTTP status, ``code`` a stable machine-readable
    name; keyword ``extra`` fields go into the JSON error body."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 **extra):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.extra = extra


class ImageError(UserError):
    """The input is not an image we can use (empty, corrupt, unsupported, too large)."""

    code = "invalid_image"


class TooManyPixels(ImageError):
    """An image with more pixels than the limit. ``pixels`` and ``limit_pixels`` go into the
    JSON error body; the services add which setting holds the limit. ``decoder_limit``:
    the limit is the image decoder's own (Pillow's decompression-bomb check), not the
    caller's, and ``pixels`` may be unknown (``None``)."""

    def __init__(self, what: str, pixels: int | None, limit: int, width: int | None = None,
                 height: int | None = None, decoder_limit: bool = False):
        if pixels is None:
            size = "more pixels than"
        elif width and height:
            size = f"{width}x{height} = {pixels:,} pixels, more than"
        else:
            size = f"{pixels:,} pixels, more than"
        whose = " (the image decoder's own limit)" if decoder_limit else ""
        super().__init__(f"{what} is {size} the limit of {limit:,} pixels{whose}",
                         pixels=pixels, limit_pixels=limit)
        self.width, self.height, self.pixels, self.limit = width, height, pixels, limit
        self.decoder_limit = decoder_limit


class ParameterError(UserError):
    """A parameter, option or field with a value we do not accept; the message names it
    and the values that are accepted."""

    code = "invalid_parameter"


class NoPersonError(UserError):
    """Nobody in the image where someone is needed (e.g. a trimap was asked for, or the
    image is smaller than the segmenter can see people in)."""

    status = 406
    code = "no_person"


class ConfigError(ValueError):
    """A service or backend is configured wrongly (an unknown setting or option, a value out
    of range). Raised at start-up, never per request; the message names the valid choices."""


class BackendUnavailable(RuntimeError):
    """A backend was asked for explicitly but cannot run here (weights or package missing)."""
