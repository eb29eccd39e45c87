"""Rotated videos (phone clips): the display matrix (90, 180, 270 degrees either sign, and
mirrored, in MP4 and MOV) is applied when reading, so frames are upright before
segmentation, the output plays upright (sides swapped, no rotation left in it), and a
rotated background video is upright too.

The clips are made here with PyAV (``set_display_rotation``) from the bundled samples,
stored turned so that the display matrix brings them back upright;
``data/phone_portrait_rotated.mp4`` is the user-reported case (a 240x180 portrait clip
that came out lying on its side).
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from core.compositing import fit_image
from core.video import BackgroundSource, VideoReader, convert_video, probe
from core.video.reader import orientation

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "video"
CASE = Path(__file__).parent / "data" / "phone_portrait_rotated.mp4"
ANGLES = (90, -90, 180, -180, 270, -270)


def write_rotated(path: Path, upright, degrees: int, hflip=False, vflip=False, fps=30) -> None:
    """H.264 clip whose frames are ``upright`` turned so that a display rotation of
    ``degrees`` (counter-clockwise, PyAV's convention) shows them upright again."""
    stored = [np.ascontiguousarray(np.rot90(im, -(degrees // 90))) for im in upright]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.height, vs.width = stored[0].shape[:2]
        vs.pix_fmt = "yuv420p"
        vs.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for i, image in enumerate(stored):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))


def stored_and_matrix(path: Path):
    """The first frame as stored, and its display matrix as read back from the file."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        matrix = [np.frombuffer(bytes(s), np.int32)[:9] for s in frame.side_data
                  if s.type.name == "DISPLAYMATRIX"]
        return frame.to_ndarray(format="rgb24"), matrix[0] if matrix else None


def displayed(stored: np.ndarray, matrix) -> np.ndarray:
    """What the display matrix means, from its definition (FFmpeg's libavutil/display.h):
    the stored pixel at (x, y) is shown at (a x + c y, b x + d y), then moved into view."""
    a, b, c, d = (int(np.sign(matrix[i])) for i in (0, 1, 3, 4))
    h, w = stored.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    x2, y2 = a * xs + c * ys, b * xs + d * ys
    x2, y2 = x2 - x2.min(), y2 - y2.min()
    out = np.zeros((y2.max() + 1, x2.max() + 1, stored.shape[2]), stored.dtype)
    out[y2, x2] = stored
    return out


@pytest.fixture(scope="module")
def person():
    with VideoReader(SAMPLES / "person.mp4", size=(120, 180), max_frames=6) as reader:
        return [f.image for f in reader]


@pytest.fixture(scope="module")
def backends():
    from core.matters import create_matter
    from core.segmenters import create_segmenter

    return create_segmenter("mediapipe", mode="fast"), create_matter("guided-filter")


@pytest.mark.parametrize("container", ["mp4", "mov"])
@pytest.mark.parametrize("degrees", ANGLES)
def test_reader_turns_frames_upright(tmp_path, person, container, degrees):
    path = tmp_path / f"rotated.{container}"
    write_rotated(path, person[:2], degrees)
    stored, matrix = stored_and_matrix(path)
    assert matrix is not None
    assert stored.shape[:2] == ((120, 180) if abs(degrees) == 180 else (180, 120))
    info = probe(path)
    assert (info.height, info.width) == (120, 180)
    with VideoReader(path) as reader:
        frames = [f.image for f in reader]
    assert frames[0].shape == (120, 180, 3)
    assert np.abs(frames[0].astype(int) - person[0]).mean() < 4  # H.264 loss only
    with VideoReader(path, size=(60, 90)) as reader:  # scaled: same picture, upright
        small = next(iter(reader)).image
    assert np.abs(small.astype(int) - fit_image(person[0], (60, 90), "cover")).mean() < 6


@pytest.mark.parametrize("container", ["mp4", "mov"])
@pytest.mark.parametrize(("degrees", "hflip", "vflip"),
                         [(0, True, False), (0, False, True), (90, True, False),
                          (-90, True, False), (180, True, False), (90, False, True)])
def test_mirrored_display_matrices_follow_their_definition(tmp_path, container, degrees, hflip, vflip):
    # An asymmetric picture: four coloured blocks and a bright corner.
    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:24, :32], picture[:24, 32:], picture[24:, :32] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    picture[:8, :8] = 255
    path = tmp_path / f"mirrored.{container}"
    write_rotated(path, [picture], degrees, hflip=hflip, vflip=vflip)
    stored, matrix = stored_and_matrix(path)
    expected = displayed(stored, matrix)
    with VideoReader(path) as reader:
        got = next(iter(reader)).image
    assert got.shape == expected.shape
    assert (probe(path).height, probe(path).width) == expected.shape[:2]
    assert np.abs(got.astype(int) - expected).mean() < 1


def test_the_older_rotate_tag():
    # FFmpeg before 6 exported the rotation as a stream tag instead of side data.
    assert orientation(None, "90") == "clock" and orientation(None, "-90") == "cclock"
    assert orientation(None, "270") == "cclock" and orientation(None, "180") == "rotate180"
    assert orientation(None, "0") is None and orientation(None, None) is None


def person_box(alpha: np.ndarray) -> np.ndarray:
    return alpha > 127


@pytest.mark.parametrize(("container", "degrees"), [("mp4", 90), ("mov", -90), ("mp4", 180),
                                                    ("mov", 270)])
def test_output_is_upright_and_the_person_found(tmp_path, person, backends, container, degrees):
    plain, rotated = tmp_path / "plain.mp4", tmp_path / f"rotated.{container}"
    write_rotated(plain, person, 0)
    write_rotated(rotated, person, degrees)
    alphas = {}
    for name, source in (("plain", plain), ("rotated", rotated)):
        out = tmp_path / f"{name}_alpha.mp4"
        result = convert_video(source, output=out, output_type="alpha", segmenter=backends[0],
                               matter=backends[1], progress=False)
        assert result.size == (120, 180)
        with av.open(str(out)) as c:
            frame = next(c.decode(video=0))
            assert (frame.height, frame.width) == (120, 180) and frame.rotation == 0
            alphas[name] = frame.to_ndarray(format="gray")
    a, b = person_box(alphas["plain"]), person_box(alphas["rotated"])
    assert a.mean() > 0.05  # the person is found ...
    assert (a & b).sum() / (a | b).sum() > 0.9  # ... in the same place as in the upright clip


def test_phone_portrait_case(tmp_path, backends):
    info = probe(CASE)
    assert (info.width, info.height) == (180, 240)
    out = tmp_path / "out.mp4"
    result = convert_video(CASE, output=out, output_type="alpha", segmenter=backends[0],
                           matter=backends[1], progress=False, max_frames=6, audio=False)
    assert result.size == (240, 180)
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (180, 240) and frame.rotation == 0
        alpha = frame.to_ndarray(format="gray") > 127
    assert alpha.mean() > 0.3  # she fills most of the portrait frame
    rows = np.flatnonzero(alpha.any(axis=1))
    assert rows[-1] == 239 and rows[0] < 60  # standing: from near the top to the bottom edge


def test_rotated_background_video_is_upright(tmp_path):
    with VideoReader(SAMPLES / "room.mp4", size=(96, 160), max_frames=3) as reader:
        room = [f.image for f in reader]
    path = tmp_path / "room_rotated.mov"
    write_rotated(path, room, -90)
    source = BackgroundSource(str(path), (96, 160), "cover")
    try:
        got = source.frame_at(0.0)
    finally:
        source.close()
    assert got.shape == (96, 160, 3)
    assert np.abs(got * 255 - room[0]).mean() < 5
