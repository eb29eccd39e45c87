"""Messages users read: a request over the size limit says the limit and the setting that
raises it; a refused output file name is shown as the user typed it."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.images import format_for_path


def test_413_names_the_limit_and_the_setting():
    from segmentation_api import create_app

    app = create_app({"MAX_UPLOAD_MB": 1, "BACKEND": "mediapipe"})
    response = app.test_client().post("/trimap", data=b"\0" * (1024 * 1024 + 10),
                                      content_type="application/octet-stream")
    assert response.status_code == 413
    body = response.get_json()
    assert "MAX_UPLOAD_MB=1 MB" in body["error"]
    assert "--max-upload-mb" in body["error"] and body["limit_mb"] == 1


def test_refused_output_format_shows_the_plain_path():
    with pytest.raises(ValueError) as info:
        format_for_path(Path("out") / "result.gifx")
    assert "PosixPath" not in str(info.value) and "'out/result.gifx'" in str(info.value)
