"""The package's one exception type."""
from __future__ import annotations


class VideoError(ValueError):
    """A video we cannot read or write as asked; the message says why."""
