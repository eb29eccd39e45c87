"""Issue 3's acceptance: with weight files in models/, ``auto`` picks FBA and Mask R-CNN,
and the whole HTTP pipeline runs through them. The files hold random weights (the real
ones cannot be downloaded here); they go through the same lookup and loader as real ones.
"""
from __future__ import annotations

import numpy as np
import pytest
import requests

torch = pytest.importorskip("torch")

from core import weights  # noqa: E402
from core.images import decode_image  # noqa: E402
from evaluation.services import running_services  # noqa: E402
from models.random_weights import save_fba, save_maskrcnn  # noqa: E402


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    save_fba(folder / weights.FBA.filename)
    save_maskrcnn("v1", folder / weights.MASKRCNN_V1.filename)
    return folder


def test_auto_picks_the_primary_models_and_the_pipeline_runs(models_dir, tmp_path,
                                                             astronaut_bytes):
    env = {"MODELS_DIR": str(models_dir), "TORCH_HOME": str(tmp_path / "torch_home")}
    with running_services(env=env, log_dir=tmp_path) as urls:
        seg = requests.get(urls.segmentation + "/health", timeout=10).json()
        mat = requests.get(urls.matting + "/health", timeout=10).json()
        assert seg["backend"]["name"] == "maskrcnn"
        assert mat["backend"]["name"] == "fba"
        r = requests.post(urls.matting + "/matte", files={"image": astronaut_bytes},
                          data={"output": "cutout"}, timeout=600)
        assert r.status_code == 200, r.text
        assert r.headers["X-Matting-Backend"] == "fba"
        assert r.headers["X-Person-Found"] == "true"  # the random weights are biased to detect
        rgba = np.asarray(decode_image(r.content))
        assert rgba.shape == (512, 512, 3)
        masks = []
        for data in ({}, {"max_people": "1"}):
            r = requests.post(urls.segmentation + "/mask", files={"image": astronaut_bytes},
                              data=data, timeout=600)
            assert r.status_code == 200, r.text
            masks.append(decode_image(r.content)[:, :, 0].astype(int))
        assert masks[1].sum() <= masks[0].sum()  # one person's mask inside everyone's
    logs = (tmp_path / "segmentation.log").read_text() + (tmp_path / "matting.log").read_text()
    assert "'auto' -> 'maskrcnn'" in logs and "'auto' -> 'fba'" in logs
