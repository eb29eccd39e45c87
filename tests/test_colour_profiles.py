"""Colour profiles: photos and backgrounds with an embedded ICC profile (Adobe RGB, Display
P3, CMYK press, grey; JPEG, PNG, WebP, TIFF) are converted to sRGB on decoding, as a
colour-managed viewer shows them, and outputs say they are sRGB.

The right value is LittleCMS's conversion (Pillow's ImageCms) of the file as Pillow reads
it; the inputs are the bundled astronaut converted into each profile and saved with it
(profiles built in ``tests/icc_profiles.py``), and ``data/colour_profile_wide_gamut.jpg``,
a user-reported case (an Adobe RGB photo whose suit came out dull).
"""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from core.images import decode_image, encode_image, read_image_file, srgb_profile
from tests.conftest import SAMPLES
from tests.icc_profiles import adobe_rgb, cmyk_print, display_p3, grey_gamma

REPO = Path(__file__).resolve().parents[1]
CASE = Path(__file__).parent / "data" / "colour_profile_wide_gamut.jpg"
PROFILES = {"adobe-rgb": adobe_rgb, "display-p3": display_p3, "cmyk": cmyk_print}
SAVE = {"jpeg": {"quality": 95}, "png": {}, "webp": {"quality": 95}, "tiff": {"compression": "tiff_lzw"}}


def profile(data: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(data))


def managed(data: bytes) -> np.ndarray:
    """The right value: the file as Pillow reads it, converted to sRGB by LittleCMS."""
    with Image.open(io.BytesIO(data)) as img:
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        if img.mode == "LA":
            img = img.convert("L")
        return np.asarray(ImageCms.profileToProfile(img, profile(img.info["icc_profile"]),
                                                    srgb_profile(), outputMode=out_mode))[..., :3]


def naive(data: bytes) -> np.ndarray:
    """What decoding did before: the profile dropped, the pixels read as sRGB."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def tagged(srgb_image: Image.Image, name: str, fmt: str) -> bytes:
    """``srgb_image`` converted into profile ``name`` and saved as ``fmt`` with it."""
    icc = PROFILES[name]()
    out_mode = "CMYK" if name == "cmyk" else srgb_image.mode
    if name == "cmyk":  # the profile has no sRGB -> CMYK table: simple separation instead
        img = srgb_image.convert("CMYK")
    else:
        img = ImageCms.profileToProfile(srgb_image, srgb_profile(), profile(icc), outputMode=out_mode)
    buf = io.BytesIO()
    img.save(buf, fmt.upper(), icc_profile=icc, **SAVE[fmt])
    return buf.getvalue()


@pytest.fixture(scope="module")
def small_photo():
    return Image.open(SAMPLES / "astronaut.jpg").convert("RGB").resize((128, 128))


CASES = [(name, fmt) for name in ("adobe-rgb", "display-p3") for fmt in SAVE] + [
    ("cmyk", "jpeg"), ("cmyk", "tiff")]


@pytest.mark.parametrize(("name", "fmt"), CASES)
def test_embedded_profiles_are_converted_to_srgb(small_photo, name, fmt):
    data = tagged(small_photo, name, fmt)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == fmt.upper() and "icc_profile" in img.info
    right = managed(data).astype(int)
    wrong = np.abs(naive(data).astype(int) - right)
    assert wrong.mean() > 2 or wrong.max() > 15  # the profile matters for this input
    got = decode_image(data)
    assert got.shape == (128, 128, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - right).max() <= 1


def test_transparent_png_with_a_profile_keeps_its_alpha(small_photo):
    rgba = small_photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    data = tagged(rgba, "display-p3", "png")
    right = managed(data).astype(int)
    with Image.open(io.BytesIO(data)) as img:
        alpha = np.asarray(img.getchannel("A"))[..., None] / 255.0
    # decode_image shows transparent pixels over white, as before
    expected = right * alpha + 255 * (1 - alpha)
    assert np.abs(decode_image(data).astype(float) - expected).max() <= 1.5


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_grey_images_with_a_grey_profile(mode):
    grey = Image.linear_gradient("L").resize((64, 64))
    img = grey if mode == "L" else Image.merge("LA", (grey, Image.new("L", grey.size, 255)))
    buf = io.BytesIO()
    img.save(buf, "PNG", icc_profile=grey_gamma(1.8))
    right = managed(buf.getvalue()).astype(int)  # gamma 1.8 -> sRGB: mid-greys darken
    assert np.abs(right - np.asarray(grey)[..., None]).max() > 10
    assert np.abs(decode_image(buf.getvalue()).astype(int) - right).max() <= 1


def test_srgb_and_untagged_files_are_unchanged(astronaut):
    plain = encode_image(astronaut, "png")
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "PNG", icc_profile=srgb_profile().tobytes())
    assert np.array_equal(decode_image(plain), astronaut)
    assert np.array_equal(decode_image(buf.getvalue()), astronaut)


def test_a_broken_profile_is_ignored_not_fatal(astronaut, caplog):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "PNG", icc_profile=b"not an icc profile" * 10)
    assert np.array_equal(decode_image(buf.getvalue()), astronaut)
    assert "ICC" in caplog.text


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_colour_outputs_are_tagged_srgb(astronaut, fmt):
    data = encode_image(astronaut, fmt)
    with Image.open(io.BytesIO(data)) as img:
        if fmt == "png":
            assert "srgb" in img.info
        else:
            desc = ImageCms.getProfileDescription(profile(img.info["icc_profile"]))
            assert "sRGB" in desc
    exact = decode_image(encode_image(astronaut, "png"))
    assert np.array_equal(exact, astronaut)
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 128, np.uint8)])
    if fmt != "jpeg":
        with Image.open(io.BytesIO(encode_image(rgba, fmt))) as img:
            assert img.mode == "RGBA" and np.asarray(img)[..., 3].min() >= 126
    with Image.open(io.BytesIO(encode_image(astronaut[..., 0], "png"))) as grey:
        assert "srgb" not in grey.info and "icc_profile" not in grey.info  # data, not colour


def test_wide_gamut_photo_and_background_keep_their_colours(tmp_path):
    """The user's case end to end (``inference.py --local``): the person's colours within 3
    levels of the colour-managed conversion (before: mean 6.2, max 29 levels off), and a
    Display P3 background likewise."""
    photo = CASE.read_bytes()
    right = managed(photo).astype(int)
    room = Image.open(SAMPLES / "background_rocket.jpg").convert("RGB").resize((512, 512))
    background = tmp_path / "room_p3.png"
    background.write_bytes(tagged(room, "display-p3", "png"))
    right_bg = managed(background.read_bytes()).astype(int)
    outputs = {}
    for kind in ("composite", "alpha"):
        outputs[kind] = tmp_path / f"{kind}.png"
        proc = subprocess.run(
            [sys.executable, str(REPO / "inference.py"), "--image_path", str(CASE), "--output_path",
             str(outputs[kind]), "--local", "--segmenter", "mediapipe", "--matter", "closed-form",
             "--background", str(background), "--output-type", kind],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    out = read_image_file(outputs["composite"]).astype(int)
    alpha = np.asarray(Image.open(outputs["alpha"]))
    # The inside of the person and of the background (a matte's edge mixes both).
    kernel = np.ones((7, 7), np.uint8)
    person = cv2.erode((alpha == 255).astype(np.uint8), kernel).astype(bool)
    rest = cv2.erode((alpha == 0).astype(np.uint8), kernel).astype(bool)
    assert person.sum() > 50_000 and rest.sum() > 50_000
    assert np.abs(out[person] - right[person]).mean() < 1
    assert np.abs(out[person] - right[person]).max() <= 3
    assert np.abs(out[rest] - right_bg[rest]).max() <= 3


@pytest.mark.parametrize("fmt", ["tiff", "jpeg"])
def test_video_background_image_with_a_profile(tmp_path, small_photo, fmt):
    from core.video import BackgroundSource

    path = tmp_path / f"background.{'tif' if fmt == 'tiff' else 'jpg'}"
    path.write_bytes(tagged(small_photo, "adobe-rgb", fmt))
    source = BackgroundSource(str(path), (128, 128), "cover")
    assert source.kind == "image"
    got = np.rint(source.frame_at(0.0) * 255).astype(int)
    assert np.abs(got - managed(path.read_bytes())).max() <= 1
