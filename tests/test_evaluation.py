"""Evaluation harness: metric functions on small arrays with known answers, floors, the
report's doc publishing, and (when the evaluation data is there) quick mode on 2 images."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation import datasets, metrics, report

REPO_ROOT = Path(__file__).resolve().parents[1]


def _band(shape=(20, 20), box=(5, 15, 5, 15)):
    trimap = np.zeros(shape, np.uint8)
    r0, r1, c0, c1 = box
    trimap[r0:r1, c0:c1] = metrics.UNKNOWN
    return trimap


# --- matting errors --------------------------------------------------------------------

def test_sad_and_mse_count_only_the_unknown_band():
    trimap = _band()                       # 10 x 10 = 100 unknown pixels
    truth = np.full((20, 20), 0.5)
    alpha = np.zeros((20, 20))
    alpha[trimap != metrics.UNKNOWN] = 1.0  # large errors outside the band must not count
    assert metrics.sad(alpha, truth, trimap) == pytest.approx(100 * 0.5 / 1000)
    assert metrics.mse(alpha, truth, trimap) == pytest.approx(0.25 * 1000)
    assert metrics.sad(truth, truth, trimap) == 0.0


def test_sad_without_trimap_scores_every_pixel_and_mse_of_an_empty_band_is_zero():
    assert metrics.sad(np.ones((10, 10)), np.zeros((10, 10))) == pytest.approx(0.1)
    assert metrics.mse(np.ones((4, 4)), np.zeros((4, 4)), np.zeros((4, 4), np.uint8)) == 0.0


def test_shapes_must_match():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.sad(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="trimap"):
        metrics.mse(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((2, 2), np.uint8))


def _expected_gain(sigma=1.4):
    # From the definition: kernel g(row) * g'(col), truncated at 1 % of the Gaussian's
    # peak scale, unit L2 norm; its response to the ramp f(x) = x is -sum_j j k[i, j].
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * 0.01))))
    u = np.arange(-half, half + 1)
    g = np.exp(-u ** 2 / (2 * sigma ** 2))
    dg = -u * g
    k = np.outer(g, dg)
    k /= np.sqrt((k ** 2).sum())
    return float(-(k * u[None, :]).sum())


def test_gradient_magnitude_of_a_ramp_is_gain_times_slope():
    assert metrics.gradient_gain() == pytest.approx(_expected_gain(), rel=1e-9)
    assert metrics.gradient_gain() == pytest.approx(9.684, abs=1e-3)
    ramp = np.tile(np.arange(60) / 100.0, (50, 1))           # slope 0.01 along x
    mag = metrics.gradient_magnitude(ramp)
    assert mag[10:40, 10:50] == pytest.approx(0.01 * metrics.gradient_gain(), rel=1e-9)
    assert metrics.gradient_magnitude(ramp.T)[10:50, 10:40] == pytest.approx(0.01 * metrics.gradient_gain())


def test_gradient_error_known_answer():
    ramp = np.tile(np.arange(60) / 100.0, (50, 1))
    flat = np.full((50, 60), 0.3)                           # no gradient at all
    trimap = _band((50, 60), (10, 40, 10, 50))              # 30 x 40 = 1200 interior pixels
    expected = 1200 * (0.01 * metrics.gradient_gain()) ** 2 / 1000
    assert metrics.gradient_error(ramp, flat, trimap) == pytest.approx(expected)
    assert metrics.gradient_error(ramp, ramp + 0.2, trimap) == pytest.approx(0.0, abs=1e-20)


def test_matting_errors_bundle():
    trimap = _band()
    out = metrics.matting_errors(np.zeros((20, 20)), np.full((20, 20), 0.5), trimap)
    assert set(out) == {"sad", "mse", "grad"}
    assert out["sad"] == pytest.approx(0.05)


# --- masks -----------------------------------------------------------------------------

def test_iou_known_answers():
    pred = np.zeros((30, 30), bool)
    truth = np.zeros((30, 30), bool)
    pred[0:10, 0:10] = True                    # 100 pixels
    truth[0:10, 0:20] = True                   # 200 pixels, contains pred
    assert metrics.iou(pred, truth) == pytest.approx(0.5)
    assert metrics.iou(truth, truth) == 1.0
    assert metrics.iou(np.zeros((5, 5), bool), np.zeros((5, 5), bool)) == 1.0
    assert metrics.iou(pred, ~pred) == 0.0


def test_boundary_is_the_inner_contour_and_ignores_the_frame_edge():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    assert metrics.boundary(mask).sum() == 4 * 10 - 4        # a 10 x 10 square's outline
    half = np.zeros((20, 20), bool)
    half[:, :10] = True                                      # touches three frame edges
    contour = metrics.boundary(half)
    assert contour.sum() == 20 and contour[:, 9].all()


def test_boundary_f_known_answers():
    a = np.zeros((60, 60), bool)
    a[5:25, 5:25] = True
    b = a.copy()
    b[35:55, 35:55] = True                     # a second object of the same size, far away
    assert metrics.boundary_f(a, a) == 1.0
    assert metrics.boundary_f(np.roll(a, 2, axis=1), a) == 1.0     # within 3 px
    # precision 1 (every predicted contour pixel is on a true one), recall 1/2
    assert metrics.boundary_f(a, b) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert metrics.boundary_f(np.roll(a, 10, axis=1), a, tolerance=3) < 0.5
    empty = np.zeros((60, 60), bool)
    assert metrics.boundary_f(empty, empty) == 1.0
    assert metrics.boundary_f(empty, a) == 0.0
    assert metrics.boundary_f(a, empty) == 0.0


def test_mask_scores_threshold_soft_masks_at_half():
    soft = np.zeros((10, 10), np.float32)
    soft[:, :5] = 0.51
    soft[:, 5:] = 0.5                           # not > 0.5
    truth = np.zeros((10, 10), bool)
    truth[:, :5] = True
    assert metrics.mask_scores(soft, truth) == {"iou": 1.0, "bf": 1.0}


# --- data sets -------------------------------------------------------------------------

def test_portrait_masks_smaller_than_the_image_are_resized_nearest(tmp_path):
    (tmp_path / "portraits" / "images").mkdir(parents=True)
    (tmp_path / "portraits" / "masks").mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "portraits/images/7.jpg")
    mask = np.zeros((15, 20), np.uint8)
    mask[:, :10] = 255
    Image.fromarray(mask).save(tmp_path / "portraits/masks/7.png")
    (sample,) = datasets.portraits(tmp_path)
    assert sample.truth.shape == (30, 40) and sample.truth.dtype == bool
    assert sample.truth[:, :20].all() and not sample.truth[:, 20:].any()
    assert datasets.available(tmp_path) == {"alphamatting": False, "davis": False, "portraits": True}


def test_data_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("EVAL_DATA", raising=False)
    assert datasets.default_data_dir() == REPO_ROOT.parent / "shared" / "data"
    monkeypatch.setenv("EVAL_DATA", str(tmp_path))
    assert datasets.default_data_dir() == tmp_path


# --- floors and reports ----------------------------------------------------------------

def test_floors_min_max_missing_and_not_run():
    figs = {"pipeline.x.iou": 0.80, "matting.t.m.sad": 2.0}
    floors = {"_comment": "ignored", "pipeline.x.iou": {"min": 0.85},
              "matting.t.m.sad": {"max": 2.5}, "segmentation.gone.iou": {"min": 0.5},
              "pipeline.renamed.iou": {"min": 0.5}}
    checks = {c["figure"]: c["status"]
              for c in report.check_floors(figs, floors, {"pipeline", "matting"})}
    assert checks == {"pipeline.x.iou": "FAIL", "matting.t.m.sad": "ok",
                      "segmentation.gone.iou": "not run", "pipeline.renamed.iou": "missing"}
    assert report.floors_failed(report.check_floors(figs, floors, {"pipeline", "matting"}))
    assert not report.floors_failed(report.check_floors({"pipeline.x.iou": 0.9},
                                                        {"pipeline.x.iou": {"min": 0.85}}, {"pipeline"}))


def test_floors_file_is_well_formed():
    floors = json.loads(report.FLOORS_PATH.read_text())
    for mode in ("quick", "full"):
        for name, bound in floors[mode].items():
            if name.startswith("_"):
                continue
            assert name.split(".")[0] in ("matting", "segmentation", "pipeline"), name
            assert set(bound) in ({"min"}, {"max"}), name


def test_publish_replaces_only_the_generated_block(tmp_path):
    doc = tmp_path / "doc.md"
    report.publish(doc, "Title", "first")
    assert doc.read_text().startswith("# Title") and "first" in doc.read_text()
    doc.write_text(doc.read_text().replace("# Title", "# Title\n\nHand-written intro.") + "\nOutro.\n")
    report.publish(doc, "Title", "second")
    text = doc.read_text()
    assert "Hand-written intro." in text and "Outro." in text
    assert "second" in text and "first" not in text


def test_no_data_is_a_clean_exit_in_quick_mode(tmp_path, capsys):
    from evaluation.__main__ import main

    assert main(["--quick", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "r")]) == 0
    assert "not found" in capsys.readouterr().out
    assert main(["--full", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "r")]) == 2


# --- the real thing, on 2 images per data set ------------------------------------------

DATA = datasets.default_data_dir()


@pytest.mark.skipif(not all(datasets.available(DATA).values()),
                    reason=f"evaluation data not found at {DATA} (set EVAL_DATA)")
def test_quick_mode_on_two_images(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "evaluation", "--quick", "--limit", "2",
                           "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    md = (out / "evaluation.md").read_text()
    assert "### Matting stage" in md and "closed-form (default)" in md
    assert "### Whole pipeline through the services" in md
    figs = json.loads((out / "figures.json").read_text())
    assert 0.0 < figs["segmentation.portraits.mediapipe.mask_iou"] <= 1.0
    assert any(k.startswith("pipeline.davis.") for k in figs)
    assert figs["matting.trimap1.closed-form (default).sad"] > 0.0
    assert (out / "eval_matting_sad.png").stat().st_size > 1000
