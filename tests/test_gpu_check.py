"""The GPU check (``scripts/gpu_check.sh`` / ``gpu_check.py``), so that it never rots where
no GPU is: one real run in CPU mode on a small photo, and its comparison and verdict rules.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")

ROOT = Path(__file__).resolve().parents[1]


def load_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


gpu_check = load_check_module()


@pytest.fixture(scope="module")
def cpu_report(tmp_path_factory):
    """The wrapper's quick run with CUDA hidden: ``(report dict, Markdown text)``."""
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable,
               TORCH_HOME=str(out.parent / "torch_home"))
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--quick",
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| backend | size | mode |" in proc.stdout  # the table is printed too
    return json.loads(out.read_text()), out.with_suffix(".md").read_text()


def test_cpu_mode_names_every_figure(cpu_report):
    report, md = cpu_report
    size = gpu_check.QUICK_SIZE
    rows = {(r["backend"], r["size"], r["mode"]): r for r in report["rows"]}
    assert set(rows) == {(b, size, m) for b in ("fba", "maskrcnn")
                         for m in ("cpu", "cuda-fp32", "cuda-tf32", "cuda-half")}
    for (backend, _, mode), row in rows.items():
        figures = {"fba": {"alpha", "foreground"}, "maskrcnn": {"mask"}}[backend]
        assert set(row["max_abs_diff"]) == figures
        assert {"seconds_per_photo", "peak_gpu_gib", "compared_with", "limit",
                "result"} <= set(row)
        if mode == "cpu":
            assert row["result"] == "reference" and row["photos"] == 1
            assert row["seconds_per_photo"] > 0 and row["limit"] is None
        else:
            assert row["result"] == "no CUDA" and row["photos"] == 0
            assert row["limit"] == {"cuda-fp32": 1e-3}.get(mode, 1e-2)
    assert report["result"] == "no CUDA" and report["machine"]["gpu"] is None
    assert report["limits"] == {"cuda-fp32": 1e-3, "cuda-tf32": 1e-2, "cuda-half": 1e-2}
    assert len(report["runs"]) == 8 and report["elapsed_s"] < 120
    for column in ("seconds per photo", "peak GPU memory (GiB)", "max abs diff alpha",
                   "max abs diff foreground", "max abs diff mask", "limit", "result"):
        assert column in md
    assert md.count("| no CUDA |") == 6 and md.count("| reference |") == 2


def test_fba_comparison():
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0, 1, (6, 8)).astype(np.float32)
    alpha[0] = 0
    alpha[1] = 1
    fg = rng.uniform(0, 1, (6, 8, 3)).astype(np.float32)
    assert gpu_check.compare_fba((alpha, fg), (alpha, fg)) == {
        "alpha": 0.0, "foreground": 0.0, "foreground_pixels_left_out": 0}
    alpha2, fg2 = alpha.copy(), fg.copy()
    alpha2[3, 3] += 0.004
    fg2[0] += 0.5  # invisible: alpha 0 there
    fg2[4, 4, 1] += 0.002
    alpha2[5, 5], fg2[5, 5] = 1.0, fg[5, 5] + 0.3  # alpha reached 1 in one run only
    diff = gpu_check.compare_fba((alpha, fg), (alpha2, fg2))
    assert diff["alpha"] == pytest.approx(max(0.004, 1 - alpha[5, 5]), abs=1e-6)
    assert diff["foreground"] == pytest.approx(0.002, abs=1e-6)
    assert diff["foreground_pixels_left_out"] == 1
    with pytest.raises(ValueError, match="shapes"):
        gpu_check.compare_fba((alpha, fg), (alpha[:3], fg[:3]))


def test_mask_comparison():
    mask = np.zeros((4, 5), np.float32)
    other = mask.copy()
    other[0, 0], other[1, 1] = 0.05, 0.6
    diff = gpu_check.compare_masks((mask, 2), (other, 3))
    assert diff == {"mask": pytest.approx(0.6), "mask_pixels_off_by_0.1": 0.05,
                    "detections": [2, 3]}


def test_verdicts():
    Run, verdict = gpu_check.Run, gpu_check.verdict
    figures = ("alpha", "foreground")

    def run(status="ok", diff=None, mode="cuda-fp32"):
        return Run("fba", "p.jpg", "720p", mode, status, 1.0 if status == "ok" else None,
                   "cpu" if diff else None, diff or {})

    ok, over = {"alpha": 5e-4, "foreground": 1e-4}, {"alpha": 2e-3, "foreground": 1e-4}
    assert verdict("cuda-fp32", [run(diff=ok), run(diff=ok)], 1e-3, figures) == "PASS"
    assert verdict("cuda-fp32", [run(diff=ok), run(diff=over)], 1e-3, figures) == "FAIL"
    assert verdict("cuda-half", [run(diff=over)], 1e-2, figures) == "PASS"
    assert verdict("cuda-fp32", [run(diff=ok), run("OOM")], 1e-3, figures) == \
        "PASS (OOM on 1 of 2 photos)"
    assert verdict("cuda-fp32", [run("OOM"), run("OOM")], 1e-3, figures) == "OOM"
    assert verdict("cuda-fp32", [run("no CUDA")], 1e-3, figures) == "no CUDA"
    assert verdict("cuda-fp32", [run(diff=ok), run("error: RuntimeError: x")], 1e-3,
                   figures) == "error: RuntimeError: x"
    assert verdict("cuda-fp32", [run()], 1e-3, figures).startswith("not compared")
    assert verdict("cuda-fp32", [run(diff=ok), run("skipped: time budget")], 1e-3,
                   figures) == "PASS (1 of 2 photos skipped for the time budget)"
    assert verdict("cpu", [run(mode="cpu")], None, figures) == "reference"
    assert verdict("cpu", [run("skipped: no CPU reference at this size", mode="cpu")], None,
                   figures) == "skipped: no CPU reference at this size"


def test_out_of_memory_is_reported_not_raised():
    import torch

    def exhaust():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    assert gpu_check.guarded(exhaust) == (None, "OOM")
    assert gpu_check.guarded(lambda: 3) == (3, "ok")
    value, status = gpu_check.guarded(lambda: 1 / 0)
    assert value is None and status.startswith("error: ZeroDivisionError")


def test_sizes_and_photos(tmp_path):
    assert gpu_check.parse_size("4K") == ("4k", (3840, 2160))
    assert gpu_check.parse_size("320x180") == ("320x180", (320, 180))
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        gpu_check.parse_size("huge")
    photo = gpu_check.load_photo(ROOT / "samples" / "astronaut.jpg")
    assert photo.mask_source == "ellipse"
    image, trimap = gpu_check.prepare(photo, (256, 144))
    assert image.shape == (144, 256, 3) and image.dtype == np.uint8
    assert trimap.shape == (144, 256) and set(np.unique(trimap)) == {0, 128, 255}
    with pytest.raises(FileNotFoundError):
        gpu_check.find_photos([str(tmp_path / "nothing.jpg")], 0)
