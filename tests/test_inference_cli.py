"""``inference.py`` as users run it: a real process, against the real services or --local."""
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

from core.images import read_image_file
from evaluation.services import REPO_ROOT, free_port
from tests.conftest import SAMPLES

PHOTO = str(SAMPLES / "astronaut.jpg")


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, str(REPO_ROOT / "inference.py"), *map(str, args)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def test_folder_output_writes_out_jpg_over_green(services, tmp_path):
    result = run_cli("--image_path", PHOTO, "--output_path", f"{tmp_path}/", "--server",
                     services.matting)
    assert result.returncode == 0, result.stderr
    out = read_image_file(tmp_path / "out.jpg")
    assert out.shape == (512, 512, 3)
    assert abs(int(out[5, 5, 1]) - 255) < 8 and out[5, 5, 0] < 8  # green, give or take JPEG


def test_background_image_and_cutout(services, tmp_path):
    result = run_cli("--image_path", PHOTO, "--output_path", tmp_path / "rocket.png",
                     "--background", SAMPLES / "background_rocket.jpg", "--server", services.matting)
    assert result.returncode == 0, result.stderr
    assert read_image_file(tmp_path / "rocket.png")[5, 5, 1] != 255
    result = run_cli("--image-path", PHOTO, "--output-path", tmp_path / "cut.png",
                     "--output-type", "cutout", "--server", services.matting)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "cut.png").mode == "RGBA"


def test_folder_of_photos(services, tmp_path):
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(PHOTO, photos / name)
    result = run_cli("--image_path", photos, "--output_path", tmp_path / "out",
                     "--output-type", "alpha", "--server", services.matting)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_local_mode_without_services(tmp_path):
    result = run_cli("--image_path", PHOTO, "--output_path", tmp_path / "o.png", "--local",
                     "--segmenter", "mediapipe", "--matter", "closed-form",
                     "--background", "#0000ff")
    assert result.returncode == 0, result.stderr
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert list(out[5, 5]) == [0, 0, 255]


def test_clear_errors(tmp_path):
    down = run_cli("--image_path", PHOTO, "--output_path", tmp_path / "x.jpg",
                   "--server", f"http://127.0.0.1:{free_port()}")
    assert down.returncode != 0 and "cannot reach the matting service" in down.stderr
    missing = run_cli("--image_path", tmp_path / "nope.jpg", "--output_path", tmp_path)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    jpeg_cutout = run_cli("--image_path", PHOTO, "--output_path", tmp_path / "x.jpg",
                          "--output-type", "cutout", "--local")
    assert jpeg_cutout.returncode != 0 and "transparency" in jpeg_cutout.stderr


def test_nobody_found(services, tmp_path):
    """A photo without people: a composite is the photo unchanged (exit 0); a cutout or
    alpha matte would be an empty file, so nothing is written and the exit status says so,
    through the services and in process alike."""
    rocket = SAMPLES / "background_rocket.jpg"
    for where in (["--server", services.matting], ["--local"]):
        composite = run_cli("--image_path", rocket, "--output_path", tmp_path / "c.png", *where)
        assert composite.returncode == 0, composite.stderr
        assert "the output is the photo unchanged" in composite.stderr
        for output in ("cutout", "alpha"):
            out = tmp_path / f"{output}.png"
            empty = run_cli("--image_path", rocket, "--output_path", out,
                            "--output-type", output, *where)
            assert empty.returncode != 0 and "no person found" in empty.stderr, empty.stderr
            assert not out.exists()


def test_missing_background_file_is_named(tmp_path):
    result = run_cli("--image_path", PHOTO, "--output_path", tmp_path / "x.jpg", "--local",
                     "--background", tmp_path / "beach.jpg")
    assert result.returncode != 0
    assert "background file not found" in result.stderr and "beach.jpg" in result.stderr
