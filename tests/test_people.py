"""Every person, crisp (issue 11): small photos, people at the frame's edge, seated
people, no ghosts. Real images: the bundled public-domain astronaut photo, made into the
kinds of input of ``../shared/cases`` (a 64 px thumbnail; a group with one person cut by
the frame's left edge and one small), and, when the shared data is there, the classroom
clip. The floors sit a little under the figures measured with ``benchmarks/bench_people.py``.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.images import ImageError, read_image_file
from core.pipeline import Pipeline
from core.trimap import FOREGROUND, TrimapParams, mask_to_trimap
from evaluation import datasets
from evaluation.metrics import boxes_mask, iou, recall, semi_transparent_share

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline.in_process("mediapipe", "closed-form")


@pytest.fixture(scope="module")
def astronaut():
    return read_image_file(SAMPLES / "astronaut.jpg")  # 512 x 512, one person


@pytest.fixture(scope="module")
def astronaut_alone(astronaut, pipeline):
    return pipeline.run(astronaut).alpha


def test_tiny_photo_keeps_the_person(astronaut, astronaut_alone, pipeline):
    # The kind of tiny_64x64.png: the whole photo scaled to 64 x 64. The original trimap
    # eroded all sure foreground away and the cutout came out fully transparent.
    tiny = cv2.resize(astronaut, (64, 64), interpolation=cv2.INTER_AREA)
    result = pipeline.run(tiny)
    assert result.person_found and (result.trimap == FOREGROUND).sum() > 200
    reference = cv2.resize(astronaut_alone, (64, 64), interpolation=cv2.INTER_AREA) > 0.5
    assert iou(result.alpha > 0.5, reference) >= 0.85  # measured 0.92
    for side in (48, 32):
        small = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
        alpha = pipeline.run(small).alpha
        assert (alpha > 0.5).mean() > 0.2, f"{side} px: the person is lost"


def test_photo_below_what_the_model_sees_is_refused(astronaut, pipeline):
    tiny = cv2.resize(astronaut, (24, 24), interpolation=cv2.INTER_AREA)
    with pytest.raises(ImageError, match="32 pixels"):
        pipeline.source.segmenter.segment(tiny)


def _group_at_edge(astronaut: np.ndarray) -> tuple[np.ndarray, list]:
    """The kind of group_at_frame_edge.jpg: the photo with its left 180 columns cut off,
    the photo mirrored, and the photo at 0.6 under a grey block; with, per person, their
    box and where it lies in the photo alone (``(x0, x1)`` columns, mirrored, scale)."""
    small = cv2.resize(astronaut, (307, 307), interpolation=cv2.INTER_AREA)
    right = np.full((512, 307, 3), 200, np.uint8)
    right[205:] = small
    image = np.concatenate([astronaut[:, 180:], astronaut[:, ::-1], right], axis=1)
    people = [((0, 0, 332, 512), lambda a: a[:, 180:]),
              ((332, 0, 844, 512), lambda a: a[:, ::-1]),
              ((844, 205, 1151, 512), lambda a: cv2.resize(a, (307, 307),
                                                         interpolation=cv2.INTER_AREA))]
    return np.ascontiguousarray(image), people


def test_group_at_frame_edge_every_person_kept(astronaut, astronaut_alone, pipeline):
    image, people = _group_at_edge(astronaut)
    alpha = pipeline.run(image).alpha
    for (x0, y0, x1, y1), view in people:
        alone = view(astronaut_alone)[:y1 - y0, :x1 - x0]
        theirs = np.zeros(alpha.shape, bool)
        theirs[y0:y1, x0:x1] = alone > 0.5
        # Measured 0.71-0.78 of what each gets alone (target 0.95, not reached: the
        # close-up in a wide group gets a greyer selfie mask over the orange suit).
        assert recall(alpha, theirs) >= 0.65
        semi_alone = semi_transparent_share(alone)
        assert semi_transparent_share(alpha, (x0, y0, x1, y1)) <= 2.0 * max(semi_alone, 0.01)


def test_no_ghosts_only_a_thin_band_is_semi_transparent(astronaut, pipeline):
    result = pipeline.run(astronaut)
    # Before the decided trimap: 10-12 % of this photo was semi-transparent.
    assert semi_transparent_share(result.alpha) <= 0.04
    # The band follows the person's size: a few pixels here, not the original's fixed
    # ~40 (measured: 6.0 % of the photo unknown against 25 %).
    original = mask_to_trimap(result.mask, TrimapParams.soft())
    assert (result.trimap == 128).mean() <= 0.4 * (original == 128).mean()
    assert (result.trimap == 128).sum() >= 1000


def test_band_is_thinner_for_a_smaller_person(astronaut, pipeline):
    mask = pipeline.source.segmenter.segment(astronaut)
    big = (mask_to_trimap(mask) == 128).sum() / max(1, (mask > 0.5).sum())
    half = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    small_mask = pipeline.source.segmenter.segment(half)
    small = (mask_to_trimap(small_mask) == 128).sum() / max(1, (small_mask > 0.5).sum())
    # Relative to the person's area the band is the same order, not 2x wider as a
    # fixed-pixel band would be on the half-size photo.
    assert small < 1.6 * big


needs_data = pytest.mark.skipif(
    not (datasets.default_data_dir() / "video" / "classroom.mp4").is_file(),
    reason="shared data (../shared/data/video/classroom.mp4) not found")


@needs_data
def test_classroom_four_seated_people(pipeline):
    frames = datasets.classroom(datasets.default_data_dir(), quick=True)
    for sample in frames[:4]:
        mask = pipeline.source.segmenter.segment(sample.image)
        coverage = [recall(mask, boxes_mask(mask.shape, p.core)) for p in sample.people]
        assert min(coverage) >= 0.9, (sample.name, coverage)


def test_stray_pieces_without_a_person_are_dropped():
    from core.segmenters.mediapipe import _drop_strays

    mask = np.zeros((200, 300), np.float32)
    mask[50:190, 20:120] = 0.95          # a person (their core is sure)
    mask[10:20, 200:210] = 0.7           # a small piece of a flag, nobody's core in it
    mask[60:190, 180:290] = 0.6          # a big region nobody's core is in: kept
    cores = [mask > 0.8]
    out = _drop_strays(mask, cores)
    assert (out[10:20, 200:210] < 0.5).all()
    assert np.array_equal(out[50:190, 20:120], mask[50:190, 20:120])
    assert (out[60:190, 180:290] > 0.5).all()
