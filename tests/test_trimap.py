import numpy as np
import pytest

from core.errors import ParameterError
from core.trimap import (
    BACKGROUND,
    FOREGROUND,
    UNKNOWN,
    TrimapParams,
    decode_trimap,
    from_two_channel,
    impose_sure_regions,
    mask_to_trimap,
    normalize_trimap,
    to_two_channel,
    unknown_bbox,
)


def disc_mask(size=200, radius=50, soft=0):
    yy, xx = np.mgrid[:size, :size]
    d = np.hypot(yy - size / 2, xx - size / 2)
    if soft == 0:
        return (d <= radius).astype(np.float32)
    return np.clip((radius + soft - d) / (2 * soft), 0, 1).astype(np.float32)


SOFT = TrimapParams.soft()  # the original service's trimap


def test_soft_mask_thresholds_and_band():
    mask = disc_mask(soft=10)  # ramps from 1 at r=40 to 0 at r=60
    trimap = mask_to_trimap(mask, SOFT)
    assert trimap.dtype == np.uint8 and set(np.unique(trimap)) == {BACKGROUND, UNKNOWN, FOREGROUND}
    # Centre is sure foreground, corners sure background.
    assert trimap[100, 100] == FOREGROUND and trimap[0, 0] == BACKGROUND
    # The 0.1..0.9 ramp lies in the unknown band.
    assert trimap[100, 100 + 50] == UNKNOWN
    # Erosion: 10 iterations of a 5x5 ellipse move the sure foreground ~20 px inside r=42
    # (mask >= 0.9 ends at r = 42).
    row = trimap[100, 100:]
    fg_end = np.flatnonzero(row == FOREGROUND)[-1]
    assert 15 <= fg_end <= 25
    # Dilation: the band reaches ~20 px beyond the last unknown pixel (r = 58).
    bg_start = np.flatnonzero(row == BACKGROUND)[0]
    assert 74 <= bg_start <= 82


def test_iterations_and_kernel_are_parameters():
    mask = disc_mask(soft=10)
    narrow = mask_to_trimap(mask, TrimapParams.soft(erode_iterations=2, dilate_iterations=2))
    wide = mask_to_trimap(mask, TrimapParams.soft(erode_iterations=10, dilate_iterations=10))
    assert (narrow == UNKNOWN).sum() < (wide == UNKNOWN).sum()
    big_kernel = mask_to_trimap(mask, TrimapParams.soft(kernel_size=9))
    assert (big_kernel == UNKNOWN).sum() > (wide == UNKNOWN).sum()


def test_hard_mask_edge_never_becomes_background():
    mask = disc_mask(soft=0)  # no unknown pixels at all
    trimap = mask_to_trimap(mask, SOFT)
    assert np.all(trimap[mask > 0] != BACKGROUND)
    assert trimap[100, 100] == FOREGROUND


def test_binary_variant_erodes_once_dilates_five_times():
    mask = disc_mask(soft=0)
    params = TrimapParams.binary()
    assert (params.erode_iterations, params.dilate_iterations) == (1, 5)
    trimap = mask_to_trimap(mask, params)
    row = trimap[100, 100:]
    assert np.flatnonzero(row == FOREGROUND)[-1] in range(46, 50)
    assert np.flatnonzero(row == BACKGROUND)[0] in range(57, 63)


def test_band_scale_follows_person_size():
    small = mask_to_trimap(disc_mask(100, 20, soft=2), TrimapParams.soft(band_scale=0.1))
    large = mask_to_trimap(disc_mask(400, 80, soft=8), TrimapParams.soft(band_scale=0.1))
    ratio = (large == UNKNOWN).sum() / (small == UNKNOWN).sum()
    assert 10 < ratio < 22  # area scales with the square of the size (4x -> 16x)


def test_no_person_gives_all_background():
    for params in (TrimapParams(), SOFT, TrimapParams.binary()):
        trimap = mask_to_trimap(np.zeros((50, 60), np.float32), params)
        assert np.all(trimap == BACKGROUND)


def test_decided_band_is_thin_and_follows_each_persons_size():
    # Two people in one mask: radius 120 and radius 20, each with a soft 0.1-0.9 ramp
    # 20 px wide (the original trimap leaves all of it, and 20 px more, unknown).
    yy, xx = np.mgrid[:400, :700]
    big = np.clip((120 + 10 - np.hypot(yy - 200, xx - 200)) / 20, 0, 1)
    small = np.clip((20 + 10 - np.hypot(yy - 200, xx - 550)) / 20, 0, 1)
    mask = np.maximum(big, small).astype(np.float32)
    trimap = mask_to_trimap(mask)  # the default is the decided trimap
    assert TrimapParams().method == "decided"
    row = trimap[200]
    # Big person: local thickness (inscribed radius) 120 -> half-width 0.035 * 120 = 4 px
    # around r = 120.
    big_fg_end = np.flatnonzero(row[200:400] == FOREGROUND)[-1]
    big_bg_start = 200 + np.flatnonzero(row[200:400] == BACKGROUND)[0]
    assert 115 <= big_fg_end <= 118 and 322 <= big_bg_start <= 325
    # Small person: half-width 1 px around r = 20.
    small_row = row[550:]
    assert np.flatnonzero(small_row == FOREGROUND)[-1] in (18, 19)
    assert np.flatnonzero(small_row == BACKGROUND)[0] in (21, 22)
    # The original trimap leaves ~10x more unknown.
    assert (mask_to_trimap(mask, SOFT) == UNKNOWN).sum() > 8 * (trimap == UNKNOWN).sum()


def test_decided_band_of_a_small_person_touching_a_big_one_stays_their_own():
    # A small person (radius 20) standing against a big one (radius 120): one connected
    # region, but the band along the small one stays 1 px, not the big one's 4 px.
    yy, xx = np.mgrid[:400, :700]
    big = np.hypot(yy - 200, xx - 200) <= 120
    small = np.hypot(yy - 200, xx - 339) <= 20  # overlaps the big disc by one pixel
    trimap = mask_to_trimap((big | small).astype(np.float32))
    row = trimap[200]
    assert np.flatnonzero(row[339:] == FOREGROUND)[-1] in (18, 19)
    assert np.flatnonzero(row[339:] == BACKGROUND)[0] in (21, 22)
    column = trimap[:, 200]  # the big one's top edge: 4 px
    assert np.flatnonzero(column[:200] == FOREGROUND)[0] in (83, 84, 85)


def test_decided_trimap_never_erodes_a_small_person_away():
    # A person 3 px wide and 12 px tall on a 64 x 64 thumbnail, mask confidence 0.6:
    # the original trimap (10 erosions, fg >= 0.9) has no sure foreground at all.
    mask = np.zeros((64, 64), np.float32)
    mask[30:42, 20:23] = 0.6
    assert not (mask_to_trimap(mask, SOFT) == FOREGROUND).any()
    trimap = mask_to_trimap(mask)
    assert (trimap[30:42, 20:23] == FOREGROUND).sum() >= 10  # the ridge, column 21
    assert (trimap[30:42, 20:23] != BACKGROUND).all()
    assert trimap[0, 0] == BACKGROUND


def test_params_from_strings_and_validation():
    parsed = TrimapParams.parse({"fg_threshold": "0.8", "erode_iterations": "3", "other": "x"})
    assert parsed == {"fg_threshold": 0.8, "erode_iterations": 3}
    params = TrimapParams.resolve(parsed)
    assert params.fg_threshold == 0.8 and params.erode_iterations == 3
    assert TrimapParams.resolve({"method": "binary"}).dilate_iterations == 5
    with pytest.raises(ParameterError, match="fg_threshold"):
        TrimapParams.parse({"fg_threshold": "abc"})
    with pytest.raises(ParameterError, match="erode_iterations"):
        TrimapParams.parse({"erode_iterations": "2.5"})
    with pytest.raises(ParameterError, match="kernel_size"):
        TrimapParams(kernel_size=0)
    with pytest.raises(ParameterError, match="method"):
        TrimapParams(method="fuzzy")
    with pytest.raises(ParameterError, match="kernal_size"):
        TrimapParams.resolve({"kernal_size": 9})
    with pytest.raises(ParameterError, match="min_band"):
        TrimapParams(min_band=5, max_band=2)
    assert TrimapParams.resolve(TrimapParams.parse({"band_fraction": "0.03"})).band_fraction == 0.03


def test_request_fields_override_configured_ones_field_by_field():
    configured = {"kernel_size": 9, "fg_threshold": 0.8}
    # A request's method=binary keeps the configured kernel and threshold, and takes the
    # binary variant's iteration counts (configured nowhere).
    params = TrimapParams.resolve(configured, {"method": "binary"})
    assert (params.method, params.kernel_size, params.fg_threshold) == ("binary", 9, 0.8)
    assert (params.erode_iterations, params.dilate_iterations) == (1, 5)
    # Configured iterations win over the method's defaults; the request's own win over both.
    both = TrimapParams.resolve({"erode_iterations": 3}, {"method": "binary"})
    assert (both.erode_iterations, both.dilate_iterations) == (3, 5)
    assert TrimapParams.resolve({"erode_iterations": 3}, {"erode_iterations": 7}).erode_iterations == 7


def test_unknown_bbox_and_sure_regions():
    trimap = np.zeros((40, 50), np.uint8)
    trimap[10:20, 5:15] = UNKNOWN
    trimap[12:18, 7:13] = FOREGROUND
    rows, cols = unknown_bbox(trimap, margin=2)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (8, 22, 3, 17)
    assert unknown_bbox(np.zeros((5, 5), np.uint8)) is None
    alpha = np.full((40, 50), 0.5, np.float32)
    impose_sure_regions(alpha, trimap)
    assert alpha[15, 10] == 1.0 and alpha[0, 0] == 0.0 and alpha[10, 5] == 0.5


def test_user_trimap_files_are_decoded_once_for_every_form():
    from core.images import encode_image

    trimap = mask_to_trimap(disc_mask(soft=10))
    assert np.array_equal(decode_trimap(encode_image(trimap, "png")), trimap)
    assert np.array_equal(decode_trimap(encode_image(to_two_channel(trimap), "npy")), trimap)
    with pytest.raises(ParameterError, match="trimap is 200x200 but the image is 10x20") as info:
        decode_trimap(encode_image(trimap, "png"), shape=(20, 10))
    assert info.value.code == "invalid_trimap"
    with pytest.raises(ParameterError, match="trimap"):
        decode_trimap(b"not an image")


def test_two_channel_round_trip_and_user_trimaps():
    trimap = mask_to_trimap(disc_mask(soft=10), SOFT)
    two = to_two_channel(trimap)
    assert two.shape == (200, 200, 2)
    assert np.array_equal(from_two_channel(two), trimap)
    assert np.array_equal(normalize_trimap(two), trimap)
    # A grey image with JPEG-like noise, and an RGB trimap, are read the same way.
    noisy = trimap.astype(np.int16) + np.random.default_rng(0).integers(-5, 6, trimap.shape)
    assert np.array_equal(normalize_trimap(np.clip(noisy, 0, 255).astype(np.uint8)), trimap)
    assert np.array_equal(normalize_trimap(np.dstack([trimap] * 3)), trimap)
