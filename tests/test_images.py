import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from core.errors import TooManyPixels
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


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` (its pixel data is not all there:
    the size is refused from the header alone)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_too_many_pixels_says_the_size_and_the_limit():
    with pytest.raises(TooManyPixels) as info:
        decode_image(encoded(Image.new("L", (5000, 4000))), max_pixels=10_000_000)
    assert "5000x4000 = 20,000,000 pixels" in str(info.value)
    assert "limit of 10,000,000 pixels" in str(info.value)
    assert info.value.extra == {"pixels": 20_000_000, "limit_pixels": 10_000_000}
    assert info.value.status == 400


def test_a_decompression_bomb_is_the_same_too_many_pixels_error():
    """Pillow refuses a 900-megapixel header in Image.open, before our own check: the
    refusal is ours all the same, without Pillow's words."""
    with pytest.raises(TooManyPixels) as info:
        decode_image(png_header(30000, 30000), max_pixels=40_000_000)
    message = str(info.value)
    assert "900,000,000 pixels" in message and "limit of 40,000,000 pixels" in message
    assert "bomb" not in message and "DOS" not in message
    # A limit set above Pillow's own: Pillow's is the one that refused, and it says so.
    with pytest.raises(TooManyPixels, match="decoder's own limit") as info:
        decode_image(png_header(15000, 15000), max_pixels=1_000_000_000)
    assert info.value.decoder_limit and info.value.limit == 2 * Image.MAX_IMAGE_PIXELS
    # Pillow's warning made an error by a filter (python -W error) is refused the same way.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(TooManyPixels, match="100,000,000 pixels.*limit of 40,000,000"):
            decode_image(png_header(10000, 10000), max_pixels=40_000_000)


def test_unreadable_data_lists_the_formats_and_names_the_field():
    with pytest.raises(ImageError) as info:
        decode_image(b"hello, not an image")
    assert "JPEG, PNG, WebP" in str(info.value) and ".npy" in str(info.value)
    with pytest.raises(ImageError) as info:
        decode_image(b"hello, not an image", field="background")
    assert str(info.value).startswith("the 'background' file is not an image")
    with pytest.raises(ImageError, match="the 'background' image is empty"):
        decode_image(b"", field="background")


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
