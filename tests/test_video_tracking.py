"""Video that follows people: the tracking segmenter (core/segmenters/tracking.py) through
the pipeline's VideoState, and temporal smoothing that follows motion (core/temporal.py).

The clips are the bundled CC BY samples (a person walking into the empty room is made
here from them) and, where the shared data is present, DAVIS dance-twirl and the
classroom clip.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.compositing import fit_image
from core.images import read_image_file
from core.segmenters import create_segmenter
from core.temporal import TemporalSmoother, VideoState
from core.video import VideoReader, video_pipeline
from evaluation.metrics import flicker, iou

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "video"
SIZE = (240, 360)


@pytest.fixture(scope="module")
def tracker():
    return create_segmenter("mediapipe-tracking")


@pytest.fixture(scope="module")
def person_frames():
    with VideoReader(SAMPLES / "person.mp4", size=SIZE, max_frames=40) as reader:
        return [f.image for f in reader]


def entering_clip(person_frames, empty: int = 8, steps: int = 12):
    """The empty room for ``empty`` frames, then the person's clip sliding in from the
    right edge over ``steps`` frames (her frame pasted ever further left over the room),
    then standing in full view. Returns the frames and, per frame, how far (pixels) her
    frame is shifted to the right (``None``: not in the picture)."""
    room = fit_image(read_image_file(SAMPLES / "room.jpg"), SIZE)
    width = SIZE[1]
    frames, shifts = [], []
    for _ in range(empty):
        frames.append(room.copy())
        shifts.append(None)
    for i, image in enumerate(person_frames):
        shift = max(0, round(width * (1 - (i + 1) / steps)))
        frame = room.copy()
        frame[:, shift:] = image[:, :width - shift]
        frames.append(frame)
        shifts.append(shift)
    return frames, shifts


def test_a_person_entering_is_picked_up_within_a_few_frames(tracker, person_frames):
    frames, shifts = entering_clip(person_frames)
    # Where she is in her own frame: the tracker on her unshifted frame, as a photo.
    body = tracker.segment(person_frames[20]) > 0.5
    assert body.mean() > 0.1
    state = VideoState()
    masks = [tracker.segment(frame, state=state) for frame in frames]
    assert all((m > 0.5).mean() < 0.01 for m in masks[:8]), "nobody in the empty room"
    # First frame with all of her in the picture (her body's columns all visible).
    cols = np.flatnonzero(body.any(axis=0))
    full = next(i for i, s in enumerate(shifts) if s is not None and s + cols[-1] < SIZE[1])
    within = tracker.detect_every + 1
    found = [i for i in range(full, len(frames)) if _covered(masks[i], body, shifts[i]) > 0.8]
    assert found and found[0] <= full + within, (full, found[:3])
    # ... and followed from then on.
    assert all(_covered(masks[i], body, shifts[i]) > 0.8 for i in range(found[0], len(frames)))


def test_a_person_leaving_is_dropped_at_once(tracker, person_frames):
    """The same clip backwards: she slides out of the right edge; once she is out of the
    picture the mask is empty (her track lost, nothing left behind)."""
    frames, shifts = entering_clip(person_frames)
    frames, shifts = frames[::-1], shifts[::-1]
    state = VideoState()
    masks = [tracker.segment(frame, state=state) for frame in frames]
    assert (masks[0] > 0.5).mean() > 0.1
    gone = next(i for i, s in enumerate(shifts) if s is None)
    assert all((m > 0.5).mean() < 0.01 for m in masks[gone:]), [
        round(float((m > 0.5).mean()), 3) for m in masks[gone - 2:]]
    assert not state.tracking.tracks


def _covered(mask: np.ndarray, body: np.ndarray, shift: int) -> float:
    """Share of her body (from her own frame, moved by ``shift``) that ``mask`` covers."""
    moved = np.zeros_like(body)
    moved[:, shift:] = body[:, :body.shape[1] - shift]
    return float((mask > 0.5)[moved].mean()) if moved.any() else 0.0


def test_more_than_six_people_are_followed(tracker, person_frames):
    """Eight people side by side (her clip at eight moments, one panel each): all eight
    followed, no limit of six."""
    row = np.ascontiguousarray(np.hstack([person_frames[3 * j] for j in range(8)]))
    state = VideoState()
    for _ in range(3):
        mask = tracker.segment(row, state=state) > 0.5
    assert len(state.tracking.tracks) == 8
    width = SIZE[1]
    assert all(mask[:, j * width:(j + 1) * width].mean() > 0.1 for j in range(8))


def test_people_followed_are_instances(tracker, person_frames):
    """Each person followed is one instance (``find_people``), so ``people=`` picks among
    them in a video: three people side by side, the pipeline asked for the middle one (a
    click on her, ``at:X,Y``)."""
    from core.people import parse_selection

    row = np.ascontiguousarray(np.hstack([person_frames[3 * j] for j in range(3)]))
    state = VideoState()
    found = tracker.find_people(row, state=state)
    assert len(found.people) == 3 and found.mask.shape == row.shape[:2]
    pipeline = video_pipeline(tracker)
    state = pipeline.new_video()
    for _ in range(2):
        result = pipeline.run(row, state=state, people=parse_selection(f"at:{SIZE[1] + 175},150"))
    width = SIZE[1]
    shown = [float((result.alpha[:, j * width:(j + 1) * width] > 0.5).mean()) for j in range(3)]
    assert shown[1] > 0.1 and shown[0] < 0.01 and shown[2] < 0.01, shown
    assert [p.selected for p in result.people].count(True) == 1


def test_tracking_runs_the_detector_only_now_and_then(tracker, person_frames):
    """Once she is found, frames are segmented from the last frame's landmarks: the
    detector runs on the first frame and then every ``detect_every`` frames."""
    state = VideoState()
    discoveries = []
    for frame in person_frames[:20]:
        tracker.segment(frame, state=state)
        discoveries.append(state.tracking.last_discovery)
    assert sorted(set(discoveries)) == list(range(0, 20, tracker.detect_every))
    assert len(state.tracking.tracks) == 1 and state.tracking.tracks[0].id == 0


def test_photo_without_state_finds_the_person(tracker, astronaut):
    mask = tracker.segment(astronaut)
    assert mask.dtype == np.float32 and mask.shape == astronaut.shape[:2]
    assert (mask[320:500, 60:260] > 0.5).mean() > 0.9


def test_bad_input_is_refused(tracker):
    from core.errors import ParameterError

    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        tracker.segment(np.zeros((10, 10), np.uint8))
    with pytest.raises(ParameterError, match="max_people"):
        tracker.segment(np.zeros((64, 64, 3), np.uint8), max_people=0)
    with pytest.raises(ValueError, match="detect_every"):
        create_segmenter("mediapipe-tracking", detect_every=0)


# -- with the shared data ---------------------------------------------------------------


def test_dance_twirl_is_followed_without_the_audience(data_dir, tracker):
    """DAVIS dance-twirl (a dancer before a seated audience), 30 frames at 854x480: the
    dancer's IoU stays at the accurate photo mode's level (0.85 there over all frames) and
    nobody in the audience is added."""
    from evaluation import datasets

    samples = datasets.davis(data_dir)[:30]
    state = VideoState()
    scores = [iou(tracker.segment(s.image, state=state) > 0.5, s.truth) for s in samples]
    assert np.mean(scores) > 0.83 and min(scores) > 0.75
    assert len(state.tracking.tracks) == 1


# -- temporal smoothing -------------------------------------------------------------------


def moving_arm_clip(frames: int = 12, grey: int = 120):
    """An "arm" (a bar) swinging right by 6 px a frame over a wall of nearly its own grey
    (inside it and at its tip the input barely changes; only its shaded upper and lower
    sides, 2 px each, are darker), with its true mask; plus a still "shoulder" edge."""
    h, w = 120, 200
    images, masks = [], []
    for t in range(frames):
        image = np.full((h, w, 3), grey, np.uint8)
        image[:, :40] = 60                       # the still body, darker than the wall
        image[40:50, 40:60 + 6 * t] = grey + 2   # the arm: nearly the wall's colour...
        image[40:42, 40:60 + 6 * t] = grey - 40  # ...but for its shaded sides
        image[48:50, 40:60 + 6 * t] = grey - 40
        mask = np.zeros((h, w), np.float32)
        mask[:, :40] = 1.0
        mask[40:50, 40:60 + 6 * t] = 1.0
        images.append(image)
        masks.append(mask)
    return images, masks


def test_smoothing_leaves_no_trail_behind_a_moving_arm():
    # The arm swings back: it covered up to x = 126 at frame 11, then is pulled in.
    images, masks = moving_arm_clip()
    back_images, back_masks = images[::-1], masks[::-1]
    state = VideoState(TemporalSmoother())
    out = []
    for image, mask in zip(back_images, back_masks):
        state.observe(image)
        out.append(state.smooth_mask(mask).copy())
    for t in range(1, len(out)):
        left = back_masks[t] == 0
        # Where the arm just was and no longer is: gone at once, no fading copy of it.
        assert out[t][left].max() < 0.05, t
        assert (out[t][back_masks[t] == 1] > 0.95).all(), t


def test_smoothing_from_the_input_alone_would_leave_that_trail():
    """The same clip with the map's own change ignored (the rule before): a trail."""
    images, masks = moving_arm_clip()
    state = VideoState(TemporalSmoother(follow_low=1.0, follow_high=2.0))
    out = []
    for image, mask in zip(images[::-1], masks[::-1]):
        state.observe(image)
        out.append(state.smooth_mask(mask).copy())
    assert float(out[6][45, 100]) > 0.4  # left two frames before: 0.75, then 0.56


def test_smoothing_keeps_still_edges_still():
    """A still outline whose mask trembles by a few tenths (the segmenter's noise) moves
    at most a quarter of that per frame (the still rate)."""
    rng = np.random.default_rng(0)
    image = np.full((60, 80, 3), 100, np.uint8)
    image[:, :40] = 30
    images, masks = [], []
    for _ in range(20):
        mask = np.zeros((60, 80), np.float32)
        mask[:, :38] = 1.0
        mask[:, 38:42] = np.clip(0.5 + rng.uniform(-0.25, 0.25, (60, 4)), 0, 1)
        images.append(image)
        masks.append(mask)
    state = VideoState(TemporalSmoother())
    smooth = []
    for image, mask in zip(images, masks):
        state.observe(image)
        smooth.append(state.smooth_mask(mask).copy())
    raw = flicker(images, masks)["still"]
    steady = flicker(images, smooth)["still"]
    assert steady < 0.35 * raw


def test_smoothing_averages_a_jump_where_nothing_moved():
    """The segmenter flipping a pixel from 0 to 1 while the whole picture is still (its
    noise on a small, seated person) is averaged, not followed."""
    image = np.full((60, 80, 3), 100, np.uint8)
    state = VideoState(TemporalSmoother())
    for mask_value in (0.0, 0.0, 1.0):
        state.observe(image)
        out = state.smooth_mask(np.full((60, 80), mask_value, np.float32))
    assert float(out.max()) == pytest.approx(0.25)


def test_smoother_refuses_bad_thresholds():
    with pytest.raises(ValueError, match="follow_low"):
        TemporalSmoother(follow_low=0.7, follow_high=0.6)


def test_video_pipeline_defaults_to_tracking():
    pipeline = video_pipeline()
    assert pipeline.source.segmenter.name == "mediapipe-tracking"
    with pytest.raises(Exception, match="segmenter mode"):
        video_pipeline(segmenter_mode="slow")


def test_tracked_pipeline_steps_overlap_in_order(person_frames):
    """The video loop's two steps (segment | matte + render) give the same alphas as the
    pipeline frame by frame, also when segmentation runs frames ahead of matting: each
    alpha is smoothed with its own frame's rate."""
    import time
    from fractions import Fraction

    from core.video import frame_steps
    from core.video.reader import Frame
    from core.video.stages import run_stages

    pipeline = video_pipeline()
    frames = person_frames[::3][:12]  # every third frame: she moves between them
    state = pipeline.new_video()
    expected = [cv2.convertScaleAbs(pipeline.run(f, state=state).alpha, alpha=255) for f in frames]
    items = [(Frame(f, i, i, Fraction(1, 30)), None) for i, f in enumerate(frames)]
    got = []
    segment, finish = frame_steps(pipeline, pipeline.new_video(), "alpha", None)

    def slow_finish(item):
        time.sleep(0.05)  # matting behind: segmentation runs up to 4 frames ahead
        return finish(item)

    run_stages(items, [segment, slow_finish], lambda out: got.append(out[0]), queue_size=4)
    assert len(got) == len(expected)
    assert max(int(np.abs(g.astype(int) - e).max()) for g, e in zip(got, expected)) <= 1


def test_classroom_keeps_all_four_seated_people(data_dir, tracker):
    """The classroom clip (four people seated at desks, small in the frame; the pose
    detector finds two of them): the first 16 frames at 854x480, each person's core boxes
    (head and torso, annotated by hand) mostly in the mask on every frame."""
    from evaluation.datasets import classroom_cores

    size = (480, 854)
    cores = classroom_cores(size)
    state = VideoState()
    with VideoReader(data_dir / "video" / "classroom.mp4", size=size, max_frames=16) as reader:
        for frame in reader:
            person = tracker.segment(frame.image, state=state) > 0.5
            kept = [np.concatenate([person[y0:y1, x0:x1].ravel() for x0, y0, x1, y1 in boxes])
                    .mean() >= 0.5 for boxes in cores]
            assert all(kept), (frame.index, kept)
