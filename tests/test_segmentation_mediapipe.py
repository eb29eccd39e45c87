"""The MediaPipe segmenter on real photos: IoU floors, group photos, modes, options.

The quality tests use the shared evaluation data (``../shared/data``) and skip without it;
they take ~10 portraits and ~10 dance frames, so they run in seconds. The floors sit a few
points under the measured figures (docs/segmentation.md) on these subsets.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError
from core.segmenters import create_segmenter
from evaluation import datasets
from evaluation.metrics import iou, recall

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"

needs_data = pytest.mark.skipif(
    not (DATA / "portraits").is_dir() or not (DATA / "davis" / "dance-twirl").is_dir(),
    reason=f"evaluation data not found at {DATA} (the shared data folder beside the repo)")


@pytest.fixture(scope="module")
def accurate():
    return create_segmenter("mediapipe")


@pytest.fixture(scope="module")
def fast():
    return create_segmenter("mediapipe", mode="fast")


@pytest.fixture(scope="module")
def portraits():
    # In file-name order: the subsets the floors were measured on.
    return sorted(datasets.portraits(DATA), key=lambda s: s.image_path.name)


def mask_iou(mask, truth):
    return iou(mask > 0.5, truth)


def _mean_iou(segmenter, samples):
    return float(np.mean([mask_iou(segmenter.segment(s.image), s.truth) for s in samples]))


def test_options_are_checked_and_unknown_ones_refused():
    segmenter = create_segmenter("mediapipe", mode="fast", model="landscape")
    facts = segmenter.describe()
    assert (facts["name"], facts["mode"], facts["model"]) == ("mediapipe", "fast", "landscape")
    assert "Apache-2.0" in facts["licence"]
    with pytest.raises(ConfigError, match="some_other_backends_option"):
        create_segmenter("mediapipe", mode="fast", some_other_backends_option=3)
    with pytest.raises(ValueError, match="mode"):
        create_segmenter("mediapipe", mode="best")
    with pytest.raises(ValueError, match="model"):
        create_segmenter("mediapipe", mode="fast", model="portrait")
    with pytest.raises(ValueError, match="pose_weight"):
        create_segmenter("mediapipe", pose_weight=1.5)
    with pytest.raises(ValueError, match="uint8"):
        create_segmenter("mediapipe", mode="fast").segment(np.zeros((8, 8), np.float32))


@pytest.mark.parametrize("mode", ["accurate", "fast"])
def test_mask_convention_and_empty_scene(mode, accurate, fast):
    segmenter = accurate if mode == "accurate" else fast
    blank = np.full((120, 200, 3), 90, np.uint8)
    mask = segmenter.segment(blank)
    assert mask.shape == (120, 200) and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert np.count_nonzero(mask > 0.5) == 0


def test_sample_photo_is_segmented_with_soft_edges(accurate):
    from core.images import read_image_file

    astronaut = read_image_file(SAMPLES / "astronaut.jpg")
    mask = accurate.segment(astronaut)
    assert mask.shape == astronaut.shape[:2]
    assert mask[200, 250] > 0.9 and mask[5, 5] < 0.1          # face / background corner
    band = np.count_nonzero((mask > 0.1) & (mask < 0.9))
    assert band > 0.002 * mask.size   # soft at the edges: the trimap gets an unknown band


def test_thread_safe(accurate):
    from core.images import read_image_file

    image = read_image_file(SAMPLES / "astronaut.jpg")
    expected = accurate.segment(image)
    results = [None] * 3

    def work(i):
        results[i] = accurate.segment(image)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results:
        assert np.abs(result - expected).max() < 1e-4


@needs_data
def test_portraits_iou_floor(accurate, fast, portraits):
    subset = portraits[::14]  # 11 photos
    assert _mean_iou(accurate, subset) >= 0.86
    assert _mean_iou(fast, subset) >= 0.80


@needs_data
def test_full_body_iou_floor(accurate, fast):
    frames = datasets.davis(DATA)[::9]  # 10 frames
    iou_accurate, iou_fast = _mean_iou(accurate, frames), _mean_iou(fast, frames)
    assert iou_accurate >= 0.80
    assert iou_accurate >= iou_fast + 0.1  # the pose model is what whole bodies need


@needs_data
def test_group_photos_have_everyone(accurate, portraits):
    groups = datasets.group_composites(portraits, layouts=("---", "--", "---"))
    assert len(groups) == 3
    for group in groups:
        mask = accurate.segment(group.image)
        recalls = [recall(mask, person.truth) for person in group.people]
        assert min(recalls) >= 0.8, (group.name, recalls)
        # 0.68, not higher: portrait 191 shows two children and its true mask only one
        # (0.729 before issue 11; 0.696 since a close-up's crop that takes in other
        # people is padded to a square for the selfie model, which takes in more of the
        # second child and the wall beside him: the price of the group-at-the-frame-edge
        # case's fix, where the middle person went from 0.79 to 0.97 of alone).
        assert mask_iou(mask, group.truth) >= 0.68, group.name


@needs_data
def test_close_up_keeps_off_background_the_detector_imagines(accurate, portraits):
    # In these close-ups the pose detector, shown the image with the woman greyed out,
    # "finds" a second, big person in the blurred studio background; the selfie models
    # see nobody there, so that person must not be kept (IoU was 0.42 and 0.68 before).
    for sample in (s for s in portraits if s.name in ("25", "83")):
        assert mask_iou(accurate.segment(sample.image), sample.truth) >= 0.85, sample.name


def test_people_seen_only_later_and_unconfirmed_are_all_dropped(accurate):
    # Nobody on the detector's first look (people found only in tiles, look 4), and the
    # selfie models see nothing of the biggest on a flat grey image: it is not a main
    # subject, so the smaller one has no group to stand with and is dropped too.
    from core.segmenters.person_detection import Person

    image = np.full((240, 320, 3), 127, np.uint8)
    landmarks = np.zeros((33, 4), np.float32)
    landmarks[:, 1] = np.linspace(0.2, 0.9, 33)  # a torso a fraction of the height long
    big, small = np.zeros((240, 320), np.float32), np.zeros((240, 320), np.float32)
    big[40:220, 40:120] = 1.0
    small[150:220, 200:230] = 1.0
    people = [Person(big, landmarks, 0.9, look=4), Person(small, landmarks * 0.5, 0.6, look=4)]
    landscape = accurate._selfie_on(accurate._selfie_landscape, image)
    assert accurate._main_subjects(image, people, landscape) == []
