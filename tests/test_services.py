"""Integration: both services as real processes on loopback ports, spoken to over HTTP."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import requests
from PIL import Image

from core.compositing import fit_image
from core.images import decode_image, encode_image
from core.trimap import BACKGROUND, FOREGROUND, UNKNOWN, to_two_channel
from evaluation.services import (
    REPO_ROOT,
    free_port,
    start_service,
    stop,
    wait_healthy,
)
from tests.conftest import SAMPLES

TIMEOUT = 120


@pytest.fixture(scope="module")
def rocket_bytes():
    return (SAMPLES / "background_rocket.jpg").read_bytes()


def post_matte(services, image_bytes, files=None, **data):
    return requests.post(services.matting + "/matte",
                         files={"image": ("photo.jpg", image_bytes), **(files or {})},
                         data=data, timeout=TIMEOUT)


def assert_json_error(response, status, words):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert words.lower() in body["error"].lower(), body
    assert body["code"] and body["request_id"] == response.headers["X-Request-Id"]


# --- health -----------------------------------------------------------------------------

def test_health(services):
    seg = requests.get(services.segmentation + "/health", timeout=10).json()
    assert seg["status"] == "ok" and seg["backend"]["name"] == "mediapipe"
    mat = requests.get(services.matting + "/health", timeout=10).json()
    assert mat["status"] == "ok" and mat["backend"]["name"] == "closed-form"
    assert mat["segmentation"]["reachable"] is True


# --- segmentation service ---------------------------------------------------------------

def test_trimap_endpoint_returns_a_png_trimap(services, astronaut_bytes):
    r = requests.post(services.segmentation + "/trimap", data=astronaut_bytes, timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    trimap = np.asarray(Image.open(io.BytesIO(r.content)))
    assert trimap.shape == (512, 512)
    assert set(np.unique(trimap)) == {BACKGROUND, UNKNOWN, FOREGROUND}
    assert trimap[100, 220] == FOREGROUND and trimap[10, 10] == BACKGROUND


def test_trimap_npz_carries_trimap_mask_and_people(services, astronaut_bytes):
    r = requests.post(services.segmentation + "/trimap", params={"format": "npz"},
                      data=astronaut_bytes, timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["X-People-Count"] == "1"
    with np.load(io.BytesIO(r.content)) as npz:
        trimap, mask, boxes = npz["trimap"], npz["mask"], npz["boxes"]
        assert npz["scores"].shape == (1,) and npz["areas"][0] > 50_000
    assert trimap.shape == mask.shape == (512, 512) and trimap.dtype == mask.dtype == np.uint8
    assert trimap[100, 220] == FOREGROUND and mask[100, 220] > 240 and mask[10, 10] < 20
    x0, y0, x1, y1 = boxes[0]
    assert x0 < 180 and y0 < 60 and x1 > 300 and y1 == 512  # her whole body, to the bottom


def test_trimap_reply_goes_back_as_a_user_trimap(services, astronaut_bytes):
    """What /trimap answers (PNG or .npy) is a valid ``trimap=`` for /matte, read the same."""
    png = requests.post(services.segmentation + "/trimap", data=astronaut_bytes, timeout=TIMEOUT)
    npy = requests.post(services.segmentation + "/trimap", params={"format": "npy"},
                        data=astronaut_bytes, timeout=TIMEOUT)
    trimap = decode_image(png.content)[:, :, 0]
    assert np.array_equal(np.load(io.BytesIO(npy.content)), trimap)
    for reply in (png, npy):
        r = post_matte(services, astronaut_bytes, files={"trimap": ("t", reply.content)},
                       output="trimap")
        assert r.status_code == 200, r.text
        assert np.array_equal(decode_image(r.content)[:, :, 0], trimap)


def test_trimap_parameters_per_request(services, astronaut_bytes):
    def unknown_count(**params):
        r = requests.post(services.segmentation + "/trimap", params=params,
                          files={"image": astronaut_bytes}, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        return int((decode_image(r.content)[:, :, 0] == UNKNOWN).sum())

    default = unknown_count()  # the decided trimap: a thin band along the outline
    soft = unknown_count(method="soft")  # the original's: 10 erosions and dilations
    assert unknown_count(method="soft", erode_iterations=2, dilate_iterations=2) < soft
    assert default < unknown_count(method="binary") < soft  # binary: erode 1, dilate 5
    assert unknown_count(band_fraction=0.08) > default
    assert unknown_count(format="npy") == default


def test_trimap_bad_parameters(services, astronaut_bytes):
    r = requests.post(services.segmentation + "/trimap", params={"fg_threshold": "lots"},
                      data=astronaut_bytes, timeout=TIMEOUT)
    assert_json_error(r, 400, "fg_threshold")
    r = requests.post(services.segmentation + "/trimap", params={"kernel_size": "0"},
                      data=astronaut_bytes, timeout=TIMEOUT)
    assert_json_error(r, 400, "kernel_size")


def test_trimap_no_person_is_406(services, rocket_bytes):
    r = requests.post(services.segmentation + "/trimap", data=rocket_bytes, timeout=TIMEOUT)
    assert_json_error(r, 406, "no person")


def test_mask_endpoint(services, astronaut_bytes):
    r = requests.post(services.segmentation + "/mask", files={"image": astronaut_bytes},
                      timeout=TIMEOUT)
    assert r.status_code == 200
    mask = decode_image(r.content)[:, :, 0]
    assert mask.shape == (512, 512) and mask[100, 220] > 200 and mask[10, 10] < 50


def test_request_id_is_kept_across_both_services(services, astronaut_bytes):
    r = requests.post(services.matting + "/matte", files={"image": astronaut_bytes},
                      headers={"X-Request-Id": "client-42"}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["X-Request-Id"] == "client-42"
    r = requests.get(services.matting + "/health", headers={"X-Request-Id": "bad id!"}, timeout=10)
    assert r.headers["X-Request-Id"] != "bad id!" and len(r.headers["X-Request-Id"]) == 32


def test_max_people_per_request(services, astronaut_bytes):
    r = post_matte(services, astronaut_bytes, max_people="1", output="alpha")
    assert r.status_code == 200, r.text
    assert len(json.loads(r.headers["X-People"])) == 1


def test_segmentation_legacy_json(services, astronaut, rocket_bytes):
    small = astronaut[::4, ::4]
    r = requests.post(services.segmentation + "/", json={"image": small.tolist()}, timeout=TIMEOUT)
    assert r.status_code == 200
    trimap = np.asarray(r.json()["trimap"])
    assert trimap.shape == (128, 128, 2)
    # 10 erosions leave little sure foreground at this size: the middle of her chest.
    assert trimap[65, 48, 1] == 1 and trimap[2, 2, 0] == 1
    rocket = decode_image(rocket_bytes)
    r = requests.post(services.segmentation + "/", json={"image": rocket.tolist()}, timeout=TIMEOUT)
    assert r.status_code == 406


# --- matting service: outputs -----------------------------------------------------------

def test_composite_over_green_by_default(services, astronaut_bytes, astronaut):
    r = post_matte(services, astronaut_bytes)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "image/png" and r.headers["X-Person-Found"] == "true"
    out = decode_image(r.content)
    assert out.shape == (512, 512, 3)
    assert np.array_equal(out[5, 5], [0, 255, 0])
    assert np.abs(out[200, 250].astype(int) - astronaut[200, 250]).max() <= 2
    stages = r.headers["Server-Timing"]
    for stage in ("decode", "segmentation", "transport", "matting", "composite", "encode"):
        assert stage in stages
    people = json.loads(r.headers["X-People"])
    assert len(people) == 1 and people[0]["area"] > 50_000 and len(people[0]["box"]) == 4
    assert len(r.headers["X-Request-Id"]) >= 16


def test_raw_body_upload(services, astronaut_bytes):
    r = requests.post(services.matting + "/matte", data=astronaut_bytes,
                      headers={"Content-Type": "image/jpeg"}, timeout=TIMEOUT)
    assert r.status_code == 200 and decode_image(r.content).shape == (512, 512, 3)


def test_raw_body_labelled_as_a_form_like_curl_does(services, astronaut_bytes):
    """``curl --data-binary @photo.jpg`` sends the bytes as
    application/x-www-form-urlencoded: both services take them as the raw upload."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = requests.post(services.matting + "/matte?output=alpha", data=astronaut_bytes,
                      headers=form, timeout=TIMEOUT)
    assert r.status_code == 200 and decode_image(r.content).shape[:2] == (512, 512)
    r = requests.post(services.segmentation + "/mask", data=astronaut_bytes, headers=form,
                      timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    # Real form text is still a form: its fields are read (and here refused by name).
    assert_json_error(requests.post(services.segmentation + "/mask", data="colour=red",
                                    headers=form, timeout=TIMEOUT), 400, "colour")


def test_kept_alive_connection_survives_refused_requests(services, astronaut_bytes):
    """A request refused on its query string, before its body was read, leaves the
    connection usable for the next one (the matting service reuses its connections)."""
    with requests.Session() as session:
        for _ in range(8):
            bad = session.post(services.segmentation + "/trimap?erode_iterations=100000",
                               data=astronaut_bytes,
                               headers={"Content-Type": "image/jpeg"}, timeout=TIMEOUT)
            assert_json_error(bad, 400, "erode_iterations")
            good = session.post(services.segmentation + "/trimap", data=astronaut_bytes,
                                headers={"Content-Type": "image/jpeg"}, timeout=TIMEOUT)
            assert good.status_code == 200, good.text
    for _ in range(4):  # and through the matting service's own connection pool
        assert_json_error(post_matte(services, astronaut_bytes, erode_iterations="100000"),
                          400, "erode_iterations")
        assert post_matte(services, astronaut_bytes).status_code == 200


@pytest.mark.parametrize("output, fmt, shape, mode", [
    ("cutout", "png", (512, 512, 4), "RGBA"),
    ("alpha", "png", (512, 512), "L"),
    ("foreground", "jpeg", (512, 512, 3), "RGB"),
    ("trimap", "png", (512, 512), "L"),
    ("composite", "webp", (512, 512, 3), "RGB"),
])
def test_output_types(services, astronaut_bytes, output, fmt, shape, mode):
    r = post_matte(services, astronaut_bytes, output=output, format=fmt)
    assert r.status_code == 200, r.text
    img = Image.open(io.BytesIO(r.content))
    assert img.mode == mode and np.asarray(img).shape == shape
    if output == "cutout":
        rgba = np.asarray(img)
        assert rgba[5, 5, 3] == 0 and rgba[200, 250, 3] == 255


def test_alpha_lossless_16_bit_and_npy(services, astronaut_bytes):
    r16 = post_matte(services, astronaut_bytes, output="alpha", alpha_bits="16")
    alpha16 = np.asarray(Image.open(io.BytesIO(r16.content)))
    assert alpha16.dtype in (np.uint16, np.int32) and alpha16.max() == 65535
    rnpy = post_matte(services, astronaut_bytes, output="alpha", format="npy")
    assert rnpy.headers["Content-Type"] == "application/x-npy"
    alpha = np.load(io.BytesIO(rnpy.content))
    assert alpha.dtype == np.float32 and alpha.shape == (512, 512)
    assert np.abs(alpha - alpha16 / 65535.0).max() < 1e-4


@pytest.mark.parametrize("fit", ["cover", "contain", "stretch"])
def test_background_image_fits(services, astronaut_bytes, rocket_bytes, fit):
    r = post_matte(services, astronaut_bytes, files={"background": ("bg.jpg", rocket_bytes)},
                   fit=fit)
    assert r.status_code == 200, r.text
    out = decode_image(r.content)
    expected = fit_image(decode_image(rocket_bytes), (512, 512), fit)
    # The background shows where the person is not: the top-left corner.
    assert np.abs(out[:20, :20].astype(int) - expected[:20, :20]).mean() < 6
    if fit == "contain":  # 640x427 into 512x512: black bars above and below
        assert out[:20, :20].max() < 10


def test_colour_and_blur_backgrounds(services, astronaut_bytes, astronaut):
    r = post_matte(services, astronaut_bytes, background="#3366ff")
    assert np.array_equal(decode_image(r.content)[5, 5], [0x33, 0x66, 0xff])
    r = post_matte(services, astronaut_bytes, background="blur")
    out = decode_image(r.content).astype(int)
    assert out[5, 5, 1] != 255  # not green
    wall = np.abs(np.diff(out[0:80, 0:100], axis=1)).mean()
    assert wall < np.abs(np.diff(astronaut[0:80, 0:100].astype(int), axis=1)).mean()


def test_user_trimap_skips_segmentation(services, astronaut_bytes):
    trimap = np.zeros((512, 512), np.uint8)
    trimap[40:512, 100:380] = UNKNOWN
    trimap[80:480, 160:320] = FOREGROUND
    for payload in (encode_image(trimap, "png"), encode_image(to_two_channel(trimap), "npy")):
        r = post_matte(services, astronaut_bytes, files={"trimap": ("t", payload)}, output="alpha")
        assert r.status_code == 200, r.text
        assert "segmentation" not in r.headers["Server-Timing"]
        alpha = decode_image(r.content)[:, :, 0]
        assert np.all(alpha[trimap == FOREGROUND] == 255) and np.all(alpha[trimap == 0] == 0)
    wrong_size = encode_image(trimap[:100], "png")
    r = post_matte(services, astronaut_bytes, files={"trimap": ("t", wrong_size)})
    assert_json_error(r, 400, "trimap")


def test_no_person_returns_the_photo_unchanged(services, rocket_bytes):
    r = post_matte(services, rocket_bytes)
    assert r.status_code == 200 and r.headers["X-Person-Found"] == "false"
    assert np.array_equal(decode_image(r.content), decode_image(rocket_bytes))


# --- the original JSON API --------------------------------------------------------------

def test_matting_legacy_json(services, astronaut, rocket_bytes):
    small = astronaut[::4, ::4]
    r = requests.post(services.matting + "/", json={"image": small.tolist()}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    out = np.asarray(r.json()["output"], dtype=np.uint8)
    assert out.shape == (128, 128, 3) and list(out[1, 1]) == [0, 255, 0]
    bg = np.zeros((50, 80, 3), np.uint8)
    bg[..., 2] = 255
    r = requests.post(services.matting + "/with_bg", json={"image": small.tolist(),
                                                           "bg": bg.tolist()}, timeout=TIMEOUT)
    out = np.asarray(r.json()["output"], dtype=np.uint8)
    assert list(out[1, 1]) == [0, 0, 255]
    rocket = decode_image(rocket_bytes)[::4, ::4]
    r = requests.post(services.matting + "/", json={"image": rocket.tolist()}, timeout=TIMEOUT)
    assert np.array_equal(np.asarray(r.json()["output"]), rocket)  # unchanged, as the original


# --- bad input --------------------------------------------------------------------------

def big_png(width, height) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("files, data, status, words", [
    ({"image": ("x.jpg", b"this is not an image")}, {}, 400, "not an image"),
    ({"image": ("x.jpg", b"")}, {}, 400, "empty"),
    ({"photo": ("x.jpg", b"abc")}, {}, 400, "missing file field 'image'"),
    ({"image": ("x.png", big_png(9000, 9000))}, {}, 400, "limit"),
])
def test_bad_uploads(services, files, data, status, words):
    r = requests.post(services.matting + "/matte", files=files, data=data, timeout=TIMEOUT)
    assert_json_error(r, status, words)


def test_too_many_pixels_names_the_size_the_limit_and_the_setting(services, astronaut_bytes):
    from tests.test_images import png_header

    r = requests.post(services.matting + "/matte", files={"image": ("x.png", big_png(9000, 9000))},
                      timeout=TIMEOUT)
    assert_json_error(r, 400, "9000x9000 = 81,000,000 pixels, more than the limit of 40,000,000")
    body = r.json()
    assert "MAX_PIXELS=40000000" in body["error"] and "--max-pixels" in body["error"]
    assert body["pixels"] == 81_000_000 and body["limit_pixels"] == 40_000_000
    # 900 megapixels: Pillow's decompression-bomb check refuses it first; the answer is ours.
    for url in (services.matting + "/matte", services.segmentation + "/trimap"):
        r = requests.post(url, files={"image": ("x.png", png_header(30000, 30000))},
                          timeout=TIMEOUT)
        assert_json_error(r, 400, "900,000,000 pixels, more than the limit of 40,000,000")
        assert "MAX_PIXELS" in r.json()["error"] and "bomb" not in r.json()["error"]
    # The background too, named.
    r = post_matte(services, astronaut_bytes, files={"background": ("bg.png", big_png(9000, 9000))})
    assert_json_error(r, 400, "the 'background' image is 9000x9000")


def test_unreadable_files_list_the_formats_and_name_the_field(services, astronaut_bytes):
    r = post_matte(services, b"this is not an image")
    assert_json_error(r, 400, "not an image in a format we can read")
    assert "JPEG, PNG, WebP" in r.json()["error"]
    r = post_matte(services, astronaut_bytes, files={"background": ("bg.jpg", b"not a photo")})
    assert_json_error(r, 400, "the 'background' file is not an image in a format we can read")
    assert "JPEG, PNG, WebP" in r.json()["error"]


def test_truncated_upload(services, astronaut_bytes):
    r = post_matte(services, astronaut_bytes[:5000])
    assert_json_error(r, 400, "truncated")


@pytest.mark.parametrize("data, words", [
    ({"output": "hologram"}, "output"),
    ({"format": "gif"}, "format"),
    ({"fit": "squash"}, "fit"),
    ({"background": "#zzzzzz"}, "colour"),
    ({"output": "cutout", "format": "jpeg"}, "transparency"),
    ({"alpha_bits": "12"}, "alpha_bits"),
    ({"max_people": "0"}, "max_people"),
    ({"erode_iterations": "many"}, "erode_iterations"),
    ({"outptu": "cutout"}, "unknown parameter"),
])
def test_bad_parameters(services, astronaut_bytes, data, words):
    assert_json_error(post_matte(services, astronaut_bytes, **data), 400, words)


@pytest.mark.parametrize("body, words", [
    (b"{not json", "JSON object"),
    (b'{"picture": []}', "image"),
    (b'{"image": [[1, 2], [3]]}', "rectangular"),
    (b'{"image": [[[1, 2, 3, 4, 5]]]}', "H x W x 3"),
])
def test_bad_json(services, body, words):
    for url in (services.matting + "/", services.segmentation + "/"):
        r = requests.post(url, data=body, headers={"Content-Type": "application/json"},
                          timeout=TIMEOUT)
        assert_json_error(r, 400, words)


def test_unknown_route_and_method_are_json(services):
    assert_json_error(requests.get(services.matting + "/nowhere", timeout=10), 404, "not found")
    assert_json_error(requests.get(services.matting + "/matte", timeout=10), 405, "method")


def test_services_survive_bad_requests(services, astronaut_bytes):
    """After every kind of failure above, both still serve a good request."""
    assert requests.get(services.segmentation + "/health", timeout=10).ok
    assert post_matte(services, astronaut_bytes).status_code == 200


# --- deployment -------------------------------------------------------------------------

def test_segmentation_down_is_503(astronaut_bytes, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    matting = start_service("matting_api", port, ["--segmentation-url", dead, "--backend",
                                                  "closed-form"], log_path=tmp_path / "m.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, matting)
        health = requests.get(url + "/health", timeout=10).json()
        assert health["status"] == "degraded" and health["segmentation"]["reachable"] is False
        r = requests.post(url + "/matte", files={"image": astronaut_bytes}, timeout=TIMEOUT)
        assert_json_error(r, 503, "segmentation service")
    finally:
        stop(matting)


def test_flask_run_in_the_service_folder(tmp_path):
    port = free_port()
    flask = shutil.which("flask", path=str(REPO_ROOT / ".venv" / "bin")) or \
        str(REPO_ROOT / ".venv" / "bin" / "flask")
    process = subprocess.Popen([flask, "run", "--port", str(port)],
                               cwd=REPO_ROOT / "segmentation_api",
                               env={"PATH": "/usr/bin:/bin", "SEGMENTATION_BACKEND": "mediapipe"},
                               stdout=open(tmp_path / "flask.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
    finally:
        stop(process)


def test_gunicorn_with_two_workers(astronaut_bytes, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--timeout",
         "300", "segmentation_api:create_app()"],
        cwd=REPO_ROOT, env={"PATH": "/usr/bin:/bin",
                            "SEGMENTATION_BACKEND": "mediapipe"},
        stdout=open(tmp_path / "gunicorn.log", "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        for _ in range(4):
            r = requests.post(url + "/trimap", data=astronaut_bytes, timeout=TIMEOUT)
            assert r.status_code == 200
    finally:
        stop(process)
