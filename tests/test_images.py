import io

import numpy as np
import pytest
from PIL import Image

from core.images import (
    ImageError,
    decode_image,
    encode_image,
    format_for_path,
    image_from_array,
)


def encoded(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgb_jpeg_decodes_to_uint8_rgb(astronaut_bytes):
    image = decode_image(astronaut_bytes)
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "LA", "1"])
def test_modes_become_rgb(astronaut, mode):
    img = Image.fromarray(astronaut).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    out = decode_image(encoded(img, fmt))
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8


def test_16_bit_grey_is_scaled_not_clipped():
    grey16 = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    out = decode_image(encoded(Image.fromarray(grey16)))
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255 and 100 < out[32, 32, 0] < 155


def test_transparent_pixels_become_white():
    rgba = np.zeros((10, 10, 4), np.uint8)
    out = decode_image(encoded(Image.fromarray(rgba, "RGBA")))
    assert np.all(out == 255)


def test_exif_orientation_is_honoured(astronaut):
    wide = Image.fromarray(astronaut[:, :300])  # 300 wide, 512 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = decode_image(encoded(wide, "JPEG", exif=exif.tobytes()))
    assert out.shape[:2] == (300, 512)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, not an image", "not an image"),
])
def test_bad_bytes_raise_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        decode_image(data)


def test_truncated_image_raises(astronaut_bytes):
    with pytest.raises(ImageError, match="corrupt|truncated"):
        decode_image(astronaut_bytes[: len(astronaut_bytes) // 3])


def test_enormous_dimensions_rejected_before_decoding():
    big = encoded(Image.new("L", (5000, 4000)))
    with pytest.raises(ImageError, match="limit"):
        decode_image(big, max_pixels=10_000_000)


def test_npy_round_trip(astronaut):
    assert np.array_equal(decode_image(encode_image(astronaut, "npy")), astronaut)


def test_arrays_from_json_lists():
    image = image_from_array([[[0, 128, 255]] * 4] * 3)
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    assert image_from_array(np.ones((2, 2, 3)) * 1.0)[0, 0, 0] == 255  # floats in [0, 1]
    with pytest.raises(ImageError, match="H x W x 3"):
        image_from_array(np.zeros((2, 2, 5)))
    with pytest.raises(ImageError, match=r"\[0, 255\]"):
        image_from_array([[[0, 0, 300]]])
    with pytest.raises(ImageError, match="rectangular"):
        image_from_array([[[0, 0, 0]], [[0, 0]]])
    with pytest.raises(ImageError):
        image_from_array("not an image")


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encode_round_trip(astronaut, fmt):
    out = decode_image(encode_image(astronaut, fmt))
    assert out.shape == astronaut.shape
    assert np.abs(out.astype(int) - astronaut).mean() < 4


def test_encode_rgba_and_16_bit_png():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 77
    img = Image.open(io.BytesIO(encode_image(rgba, "png")))
    assert img.mode == "RGBA" and np.asarray(img)[0, 0, 3] == 77
    alpha16 = np.full((8, 8), 40000, np.uint16)
    img = Image.open(io.BytesIO(encode_image(alpha16, "png")))
    assert np.asarray(img).max() == 40000
    with pytest.raises(ValueError, match="transparency"):
        encode_image(rgba, "jpeg")
    with pytest.raises(ValueError, match="16-bit"):
        encode_image(alpha16, "jpeg")


def test_format_for_path():
    assert format_for_path("a/b.JPG") == "jpeg" and format_for_path("x.png") == "png"
    with pytest.raises(ValueError):
        format_for_path("x.gifx")
