import numpy as np
import pytest

from core.compositing import (
    blur,
    composite,
    cutout,
    fit_image,
    make_background,
    parse_color,
)


def test_parse_colors():
    assert parse_color("#00ff00") == (0, 255, 0)
    assert parse_color("00FF00") == (0, 255, 0)
    assert parse_color("green") == (0, 128, 0)
    with pytest.raises(ValueError, match="not a colour"):
        parse_color("#12")


@pytest.mark.parametrize("mode", ["cover", "contain", "stretch"])
def test_fit_modes_give_the_frame_size(mode):
    bg = np.random.default_rng(0).random((100, 300, 3)).astype(np.float32)
    assert fit_image(bg, (240, 360), mode).shape == (240, 360, 3)


def test_cover_crops_centre_and_contain_pads():
    bg = np.zeros((100, 300, 3), np.float32)
    bg[:, 100:200] = 1.0  # white centre third
    covered = fit_image(bg, (100, 100), "cover")
    assert covered.mean() > 0.95  # only the centre remains
    contained = fit_image(bg, (300, 300), "contain")
    assert contained[0].max() == 0 and contained[150].max() == 1.0  # black bars top/bottom


def test_backgrounds_from_specs(astronaut):
    image = astronaut.astype(np.float32) / 255
    green = make_background("#00ff00", image)
    assert green.shape == image.shape and np.allclose(green[0, 0], [0, 1, 0])
    blurred = make_background("blur", image)
    assert blurred.shape == image.shape
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(image, axis=1)).mean() / 3
    assert make_background("transparent", image) is None
    assert make_background(astronaut[:100], image).shape == image.shape
    with pytest.raises(ValueError):
        make_background("blur:abc", image)


def test_blur_scales_with_image_size():
    small = np.zeros((100, 100), np.float32)
    small[50, 50] = 1
    large = np.zeros((400, 400), np.float32)
    large[200, 200] = 1
    # Same relative spread: the peak of the larger image falls ~16x further.
    ratio = blur(small).max() / blur(large).max()
    assert 10 < ratio < 20


def test_composite_and_cutout_math():
    fg = np.ones((2, 2, 3), np.float32)
    bg = np.zeros((2, 2, 3), np.float32)
    alpha = np.array([[0, 0.5], [1, 0.25]], np.float32)
    out = composite(fg, alpha, bg)
    assert out.dtype == np.uint8 and list(out[:, :, 0].ravel()) == [0, 128, 255, 64]
    rgba = cutout(fg, alpha)
    assert rgba.shape == (2, 2, 4) and rgba[0, 1, 3] == 128
