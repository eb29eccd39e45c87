"""Each embedded backend on real photos, through the same interface (one parametrised test
per family, as pymatting and torchvision do)."""
import numpy as np
import pytest

from core.errors import BackendUnavailable
from core.images import read_image_file, to_float
from core.matters import MATTERS, create_matter
from core.pipeline import Pipeline, render
from core.segmenters import SEGMENTERS, create_segmenter
from core.trimap import BACKGROUND, FOREGROUND, UNKNOWN, TrimapParams, mask_to_trimap
from tests.conftest import SAMPLES


def available(create, name):
    try:
        return create(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module", params=sorted(SEGMENTERS))
def segmenter(request):
    return available(create_segmenter, request.param)


@pytest.fixture(scope="module", params=sorted(MATTERS))
def matter(request):
    return available(create_matter, request.param)


def test_segmenter_finds_the_astronaut(segmenter, astronaut):
    mask = segmenter.segment(astronaut)
    assert mask.shape == astronaut.shape[:2] and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    if segmenter.name == "maskrcnn" and mask.max() < 0.5:
        pytest.skip("Mask R-CNN with random test weights finds nobody; covered in test_maskrcnn")
    person = mask > 0.5
    # Boxes read off the sample by eye: her face and her suit, then the wall above the
    # flag and the wall beside her head.
    assert person[60:160, 180:270].mean() > 0.9 and person[320:500, 60:260].mean() > 0.9
    assert person[0:100, 0:120].mean() < 0.05 and person[0:120, 330:380].mean() < 0.05


def test_segmenter_finds_nobody_in_an_empty_scene(segmenter):
    rocket = read_image_file(SAMPLES / "background_rocket.jpg")
    assert (segmenter.segment(rocket) > 0.5).mean() < 0.02  # a launch pad, no people


MAX_BAND_ERROR = {"closed-form": 0.04, "guided-filter": 0.12}


def synthetic_matte_case(astronaut):
    """A photo made by compositing with a known, soft alpha."""
    rng = np.random.default_rng(1)
    h, w = 200, 240
    fg = to_float(astronaut[100:300, 150:390])
    bg = to_float(read_image_file(SAMPLES / "background_rocket.jpg")[:h, :w])
    yy, xx = np.mgrid[:h, :w]
    radius = 70 + 6 * np.sin(np.arctan2(yy - 100, xx - 120) * 9)  # wavy edge
    alpha = np.clip((radius - np.hypot(yy - 100, xx - 120)) / 6 + 0.5, 0, 1).astype(np.float32)
    image = fg * alpha[..., None] + bg * (1 - alpha[..., None]) + rng.normal(0, 0.002, fg.shape)
    image = np.clip(image, 0, 1).astype(np.float32)
    trimap = mask_to_trimap(alpha, TrimapParams.soft(fg_threshold=0.99, unknown_threshold=0.01,
                                                     erode_iterations=3, dilate_iterations=3))
    return image, trimap, alpha


def test_matter_recovers_a_known_alpha(matter, astronaut):
    image, trimap, true_alpha = synthetic_matte_case(astronaut)
    alpha, fg = matter.matte(image, trimap)
    assert alpha.shape == trimap.shape and fg.shape == image.shape
    assert alpha.dtype == np.float32 and 0 <= alpha.min() and alpha.max() <= 1
    unknown = trimap == UNKNOWN
    if matter.name == "fba" and getattr(matter, "random_weights", False):
        pytest.skip("FBA with random weights: numbers checked against the reference instead")
    # Mean absolute alpha error in the band, far below a blind guess (~0.3); each method
    # has its own tolerance, as in pymatting's tests.
    assert np.abs(alpha - true_alpha)[unknown].mean() < MAX_BAND_ERROR.get(matter.name, 0.08)
    assert np.all(alpha[trimap == FOREGROUND] > 0.99) and np.all(alpha[trimap == BACKGROUND] < 0.01)


@pytest.fixture(scope="module")
def embedded_pipeline():
    return Pipeline.in_process("mediapipe", "closed-form")


def test_pipeline_on_the_sample_photo(astronaut, embedded_pipeline):
    result = embedded_pipeline.run(astronaut)
    assert result.person_found
    assert len(result.people) == 1 and result.people[0].area > 0.2 * astronaut.shape[0] ** 2
    assert set(result.timings) >= {"segmentation", "trimap", "matting"}
    composite = render(result, "composite", "#00ff00")
    assert composite.shape == astronaut.shape and composite.dtype == np.uint8
    # Top-left corner (background) is now green, the face is unchanged.
    assert np.array_equal(composite[5, 5], [0, 255, 0])
    assert np.abs(composite[200, 250].astype(int) - astronaut[200, 250]).max() <= 2
    cut = render(result, "cutout")
    assert cut.shape == (512, 512, 4) and cut[5, 5, 3] == 0 and cut[200, 250, 3] == 255
    alpha16 = render(result, "alpha", alpha_bits=16)
    assert alpha16.dtype == np.uint16 and alpha16.max() == 65535


def test_photo_without_people_is_returned_unchanged(embedded_pipeline):
    rocket = read_image_file(SAMPLES / "background_rocket.jpg")
    result = embedded_pipeline.run(rocket)
    assert not result.person_found and result.people == []
    assert np.array_equal(render(result, "composite", "#00ff00"), rocket)


def test_mask_prior_keeps_closed_form_on_the_person(astronaut):
    """With a wide band over a busy background, the plain closed form can bleed; the
    segmenter's mask as a weak prior keeps alpha on the person (see closed_form.py)."""
    segmenter, matter = create_segmenter("mediapipe"), create_matter("closed-form")
    mask = segmenter.segment(astronaut)
    trimap = mask_to_trimap(mask)
    with_prior, _ = matter.matte(to_float(astronaut), trimap, mask)
    person = mask > 0.5
    agreement = ((with_prior > 0.5) == person).mean()
    assert agreement > 0.97
    # Still a matte, not a copy of the mask: the band holds values the mask does not.
    band = trimap == UNKNOWN
    assert np.abs(with_prior - mask)[band].mean() > 0.005


@pytest.mark.parametrize("strip_pixels", [600, 65_536])
def test_laplacian_rows_match_pymatting(astronaut, strip_pixels):
    """The band's Laplacian rows, built strip by strip, are pymatting's cf_laplacian rows
    (the whole crop at once) to rounding, whatever the strip size."""
    from pymatting import cf_laplacian

    from core.matters.closed_form import laplacian_rows

    mask = create_segmenter("mediapipe").segment(astronaut)
    unknown = mask_to_trimap(mask) == UNKNOWN
    crop = (slice(100, 260), slice(120, 300))
    image, band = to_float(astronaut)[crop].astype(np.float64), unknown[crop]
    assert band.sum() > 500
    whole = cf_laplacian(image, 1e-7, 1, is_known=~band)[band.ravel()]
    strips = laplacian_rows(image, band, 1e-7, 1, strip_pixels=strip_pixels)
    assert strips.shape == whole.shape
    assert abs(whole - strips).max() < 1e-12
