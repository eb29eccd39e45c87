"""How the services answer failures, through Flask's test client with tiny fake backends
(the integration tests in test_services.py use the real models and processes).

The rule: what the caller got wrong is a 4xx naming it; anything else is a logged 500 with
a request id; configuration mistakes fail at start-up, naming the valid choices.
"""
from __future__ import annotations

import io
import logging

import numpy as np
import pytest

import matting_api
import segmentation_api
from core.errors import ConfigError, ParameterError
from core.images import encode_image
from core.matters import Matter
from core.pipeline import LocalPersonSource
from core.segmenters import Segmenter
from core.trimap import FOREGROUND, UNKNOWN


class DiscSegmenter(Segmenter):
    """A person-shaped disc in the middle of any image."""

    name = "disc"

    def segment(self, image, *, max_people=None):
        h, w = image.shape[:2]
        yy, xx = np.mgrid[:h, :w]
        return (np.hypot(yy - h / 2, xx - w / 2) < min(h, w) / 3).astype(np.float32)


class BuggySegmenter(Segmenter):
    """A backend with a bug: a numpy broadcasting error, which is a ValueError."""

    name = "buggy"

    def segment(self, image, *, max_people=None):
        return np.zeros((3, 4)) + np.zeros((5,))


class BuggyMatter(Matter):
    name = "buggy-matter"

    def matte(self, image, trimap, prior=None):
        raise ValueError("operands could not be broadcast together")


@pytest.fixture
def photo_png():
    return encode_image(np.full((240, 320, 3), 128, np.uint8), "png")


def segmentation_client(segmenter, **config):
    app = segmentation_api.create_app({"SEGMENTER": segmenter, "TESTING": True, **config})
    return app.test_client()


def test_a_bug_in_a_backend_is_a_logged_500_with_a_request_id(photo_png, caplog):
    client = segmentation_client(BuggySegmenter())
    with caplog.at_level(logging.ERROR):
        r = client.post("/trimap", data=photo_png)
    assert r.status_code == 500
    body = r.get_json()
    assert body["code"] == "internal_error" and body["request_id"] == r.headers["X-Request-Id"]
    assert body["request_id"] in body["error"]
    assert "broadcast" not in body["error"]  # internals stay in the log
    record = next(rec for rec in caplog.records if body["request_id"] in rec.getMessage())
    assert record.exc_info is not None  # the traceback is in the log
    assert client.get("/health").status_code == 200  # and the service goes on


def test_callers_mistakes_are_4xx_naming_them(photo_png):
    client = segmentation_client(DiscSegmenter())
    cases = [
        (client.post("/trimap", data=b"junk"), 400, "invalid_image"),
        (client.post("/trimap?kernel_size=0", data=photo_png), 400, "invalid_parameter"),
        (client.post("/trimap?kernal_size=3", data=photo_png), 400, "unknown_parameter"),
        (client.post("/trimap?max_people=none", data=photo_png), 400, "invalid_parameter"),
        (client.post("/trimap?format=gif", data=photo_png), 400, "invalid_parameter"),
        (client.get("/trimap"), 405, "method_not_allowed"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.get_json()
        assert response.get_json()["code"] == code
        assert response.headers["X-Request-Id"]


def test_nobody_is_406_and_a_person_is_found(photo_png):
    class Nobody(DiscSegmenter):
        def segment(self, image, *, max_people=None):
            return np.zeros(image.shape[:2], np.float32)

    r = segmentation_client(Nobody()).post("/trimap", data=photo_png)
    assert r.status_code == 406 and r.get_json()["code"] == "no_person"
    r = segmentation_client(DiscSegmenter()).post("/trimap?format=npy", data=photo_png)
    assert r.status_code == 200 and r.headers["X-People-Count"] == "1"


def test_too_large_upload_names_the_limit_and_the_setting(photo_png):
    client = segmentation_client(DiscSegmenter(), MAX_UPLOAD_MB=1)
    r = client.post("/trimap", data=b"x" * (2 * 1024 * 1024))
    assert r.status_code == 413
    body = r.get_json()
    assert "MAX_UPLOAD_MB=1 MB" in body["error"] and "--max-upload-mb" in body["error"]
    assert body["limit_mb"] == 1


def test_a_bug_in_the_matting_backend_is_a_500(photo_png):
    app = matting_api.create_app({"MATTER": BuggyMatter(), "WARMUP": 0, "TESTING": True,
                                  "SEGMENTATION_URL": "http://127.0.0.1:9"})
    trimap = np.zeros((240, 320), np.uint8)
    trimap[10:50, 10:70] = UNKNOWN
    trimap[20:40, 30:50] = FOREGROUND
    client = app.test_client()
    r = client.post("/matte", data={"image": (io.BytesIO(photo_png), "p.png"),
                                    "trimap": (io.BytesIO(encode_image(trimap, "png")), "t.png")})
    assert r.status_code == 500 and r.get_json()["code"] == "internal_error"
    r = client.post("/matte", data={"image": "photo.jpg"})  # curl -F image=photo.jpg, no @
    assert r.status_code == 400 and r.get_json()["code"] == "not_a_file"


def test_unknown_settings_fail_at_start_up_naming_the_valid_ones(monkeypatch):
    with pytest.raises(ConfigError, match="TRIMAP_KERNAL_SIZE.*did you mean TRIMAP_KERNEL_SIZE"):
        monkeypatch.setenv("TRIMAP_KERNAL_SIZE", "9")
        segmentation_api.create_app({"SEGMENTER": DiscSegmenter()})
    monkeypatch.delenv("TRIMAP_KERNAL_SIZE")
    with pytest.raises(ConfigError, match="MAX_PIXEL"):
        segmentation_api.create_app({"SEGMENTER": DiscSegmenter(), "MAX_PIXEL": 10})
    # The other service's settings in a shared environment are no typo.
    monkeypatch.setenv("SEGMENTATION_URL", "http://127.0.0.1:3000")
    segmentation_api.create_app({"SEGMENTER": DiscSegmenter()})


def test_backend_option_typos_and_bad_values_fail_at_start_up():
    from core.matters import create_matter
    from core.segmenters import create_segmenter

    with pytest.raises(ConfigError, match=r"no option\(s\) \['max_unknwn'\].*max_unknown"):
        create_matter("closed-form", max_unknwn=10)
    with pytest.raises(ConfigError, match="mode"):
        create_segmenter("mediapipe", mode="fastest")
    with pytest.raises(ConfigError, match="unknown matting backend 'fbb'"):
        create_matter("fbb")
    with pytest.raises(ConfigError, match="name the backend"):
        create_matter("auto", max_unknown=10)
    # A setting for a backend that is not chosen is checked too.
    with pytest.raises(ConfigError, match="fba"):
        create_matter("closed-form", {"fba": {"max_sise": 9}})


def test_configured_trimap_fields_survive_a_per_request_method():
    source = LocalPersonSource(DiscSegmenter(), {"kernel_size": 9})
    params = source.params_for({"method": "binary"})
    assert (params.method, params.kernel_size, params.erode_iterations) == ("binary", 9, 1)
    with pytest.raises(ParameterError):
        LocalPersonSource(DiscSegmenter(), {"kernel_size": 0})
