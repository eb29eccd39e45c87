"""Messages users read: a refused output file name is shown as the user typed it (the 413
message is tested with the other error answers in test_errors.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.images import format_for_path


def test_refused_output_format_shows_the_plain_path():
    with pytest.raises(ValueError) as info:
        format_for_path(Path("out") / "result.gifx")
    assert "PosixPath" not in str(info.value) and "'out/result.gifx'" in str(info.value)
