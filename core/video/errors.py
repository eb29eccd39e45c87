"""The package's one exception type."""
from __future__ import annotations

from core.errors import UserError


class VideoError(UserError):
    """A video we cannot read or write as asked (missing, not a video, a container that
    cannot hold the output); the message says why."""

    code = "invalid_video"
