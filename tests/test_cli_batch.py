"""``inference.py`` on folders: one output per photo even when names share a stem
(``data/batch same stem/``: ``photo one.jpg`` and ``photo one.png``, a user-reported case
where the second silently overwrote the first), no output over an input photo, a bad photo
reported without stopping the rest (and a non-zero exit), a progress bar, and photos sent
to the service several at a time."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from core.images import read_image_file
from evaluation.services import REPO_ROOT
from tests.conftest import SAMPLES

SAME_STEM = Path(__file__).parent / "data" / "batch same stem"
LOCAL = ("--local", "--segmenter", "mediapipe", "--matter", "closed-form")


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, str(REPO_ROOT / "inference.py"), *map(str, args)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def opaque_difference(cutout: Path, photo: Path) -> float:
    """Mean difference between a cutout's opaque pixels and the photo's."""
    rgba = np.asarray(Image.open(cutout)).astype(int)
    image = read_image_file(photo).astype(int)
    opaque = rgba[..., 3] == 255
    assert opaque.sum() > 500
    return float(np.abs(rgba[..., :3][opaque] - image[opaque]).mean())


def test_same_stem_photos_get_one_output_each(tmp_path):
    result = run_cli("--image_path", SAME_STEM, "--output_path", tmp_path, "--output-type",
                     "cutout", *LOCAL)
    assert result.returncode == 0, result.stderr
    jpg, png = tmp_path / "photo one.jpg.png", tmp_path / "photo one.png.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == [jpg.name, png.name]
    # each output is its own photo's, not the other's
    assert opaque_difference(jpg, SAME_STEM / "photo one.jpg") < 10 < opaque_difference(
        jpg, SAME_STEM / "photo one.png")
    assert opaque_difference(png, SAME_STEM / "photo one.png") < 10 < opaque_difference(
        png, SAME_STEM / "photo one.jpg")


def test_names_without_clashes_are_unchanged_and_inputs_never_overwritten(tmp_path):
    import inference

    args = argparse.Namespace(output_path=str(tmp_path), output_type="cutout",
                              background="#00ff00")
    photos = [tmp_path / "a.jpg", tmp_path / "b.png", tmp_path / "c.JPG", tmp_path / "C.webp"]
    for photo in photos:
        photo.write_bytes(b"")
    planned = [out.name for _, out in inference.plan_outputs(args, photos)]
    # b.png would replace itself, c/C share a stem on case-insensitive disks
    assert planned == ["a.png", "b.png.png", "c.JPG.png", "C.webp.png"]


def test_an_output_over_its_own_photo_is_refused_before_writing(tmp_path):
    photo = tmp_path / "me.png"
    shutil.copy(SAMPLES / "astronaut.jpg", tmp_path / "astronaut.jpg")
    Image.open(tmp_path / "astronaut.jpg").save(photo)
    before = photo.read_bytes()
    result = run_cli("--image_path", photo, "--output_path", photo, *LOCAL)
    assert result.returncode != 0 and "would overwrite" in result.stderr
    assert photo.read_bytes() == before


def test_a_bad_photo_is_reported_and_the_rest_done(tmp_path):
    photos = tmp_path / "in"
    photos.mkdir()
    shutil.copy(SAMPLES / "astronaut.jpg", photos / "good.jpg")
    (photos / "broken.jpg").write_bytes(b"not a jpeg at all")
    out = tmp_path / "out"
    result = run_cli("--image_path", photos, "--output_path", out, "--output-type", "alpha", *LOCAL)
    assert result.returncode == 1
    assert [p.name for p in out.iterdir()] == ["good.png"]
    assert "broken.jpg" in result.stderr and "1 of 2 photos failed" in result.stderr
    assert "2/2" in result.stderr and "photo/s" in result.stderr  # the progress bar


def test_folder_through_the_service_in_parallel(services, tmp_path):
    import inference

    photos = tmp_path / "in"
    photos.mkdir()
    for i in range(4):
        shutil.copy(SAMPLES / "astronaut.jpg", photos / f"p{i}.jpg")
    shutil.copy(SAME_STEM / "photo one.jpg", photos / "p0.png")  # a stem clash too
    # The service reports no worker count: two at a time; --jobs overrides it.
    assert inference.service_workers(argparse.Namespace(jobs=None, server=services.matting)) == 2
    assert inference.service_workers(argparse.Namespace(jobs=3, server=services.matting)) == 3
    out = tmp_path / "out"
    result = run_cli("--image_path", photos, "--output_path", out, "--output-type", "alpha",
                     "--server", services.matting, "--jobs", "3")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["p0.jpg.png", "p0.png.png", "p1.png", "p2.png", "p3.png"]
    alphas = [np.asarray(Image.open(out / n)) for n in names if n != "p0.png.png"]
    assert all(np.array_equal(a, alphas[0]) for a in alphas)  # same photo, same matte
    assert np.asarray(Image.open(out / "p0.png.png")).shape == (256, 256)
