"""Mask R-CNN segmenter without the real weights: random weights in torchvision's format.

The real code path runs (file lookup, strict load, torchvision transform, person filter,
mask sum); only the numbers are meaningless. The person class's logit is biased up so
that the random network does detect "people" and the mask path is exercised.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from core import weights as weight_records  # noqa: E402
from core.errors import BackendUnavailable  # noqa: E402
from core.segmenters import create_segmenter  # noqa: E402
from core.segmenters.maskrcnn import MaskRCNNSegmenter, half_backbone, load_model  # noqa: E402
from models.random_weights import save_maskrcnn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PHOTO_DIRS = [ROOT / "samples", ROOT.parent / "shared" / "data" / "portraits" / "images"]


def photo() -> np.ndarray:
    """A real photo when one is at hand (samples/ or the shared portraits), else synthetic."""
    from core.images import read_image_file

    for folder in PHOTO_DIRS:
        files = sorted(folder.glob("*.jp*g")) + sorted(folder.glob("*.png"))
        if files:
            image = read_image_file(files[0])
            scale = 240 / max(image.shape[:2])
            if scale < 1:
                import cv2
                image = cv2.resize(image, None, fx=scale, fy=scale,
                                   interpolation=cv2.INTER_AREA)
            return image
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (180, 240, 3), dtype=np.uint8)
    image[40:170, 80:160] = (200, 150, 120)  # a person-sized blob
    return image


@pytest.fixture(autouse=True)
def empty_torch_hub(tmp_path, monkeypatch):
    """Keep a developer's real torch.hub cache out of these tests."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


@pytest.fixture(scope="module", params=["v1", "v2"])
def weights(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"models_{request.param}")
    record = getattr(weight_records, f"MASKRCNN_{request.param.upper()}")
    return request.param, save_maskrcnn(request.param, folder / record.filename)


def test_segment_real_code_path(weights):
    variant, path = weights
    ok, why = MaskRCNNSegmenter.is_available(variant=variant, models_dir=path.parent)
    assert ok, why
    seg = MaskRCNNSegmenter(variant=variant, models_dir=path.parent, device="cpu",
                            inference_size=64, score_threshold=0.8, proposals=10)
    # Configured through torchvision's builder arguments, one cached model per configuration.
    assert seg.model.transform.min_size == (64,) and seg.model.roi_heads.score_thresh == 0.8
    assert seg.model.rpn.post_nms_top_n() == 10
    other = MaskRCNNSegmenter(variant=variant, models_dir=path.parent, device="cpu",
                              inference_size=96, score_threshold=0.8, proposals=10)
    assert other.model is not seg.model and seg.model.transform.min_size == (64,)
    image = photo()
    scores, masks = seg.detect(image)
    assert len(scores) >= 2, "the biased person logit should give detections"
    assert np.all(np.diff(scores) <= 0) and scores.min() >= 0.8
    assert masks.shape == (len(scores), *image.shape[:2]) and masks.dtype == np.float32
    mask = seg.segment(image)
    assert mask.shape == image.shape[:2] and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0 and mask.max() > 0
    np.testing.assert_allclose(mask, np.clip(masks.sum(0), 0, 1), atol=1e-6)
    one = seg.segment(image, max_people=1)
    np.testing.assert_allclose(one, np.clip(masks[0], 0, 1), atol=1e-6)
    assert seg.describe()["variant"] == variant


def test_max_people_option(weights):
    variant, path = weights
    seg = MaskRCNNSegmenter(variant=variant, weights_path=path, device="cpu",
                            inference_size=64, score_threshold=0.8, proposals=10,
                            max_people=1)
    image = photo()
    one, everyone = seg.segment(image), seg.segment(image, max_people=100)
    assert np.all(one <= everyone + 1e-6) and everyone.sum() > one.sum() > 0


def test_nobody_above_threshold_gives_zeros(weights):
    variant, path = weights
    seg = MaskRCNNSegmenter(variant=variant, weights_path=path, device="cpu",
                            inference_size=64, score_threshold=1.0, proposals=10)
    image = photo()
    mask = seg.segment(image)
    assert mask.shape == image.shape[:2] and mask.dtype == np.float32 and not mask.any()


def test_unavailable_without_weights(tmp_path):
    for variant, flag in (("v1", "maskrcnn"), ("v2", "maskrcnn_v2")):
        ok, why = MaskRCNNSegmenter.is_available(variant=variant, models_dir=tmp_path)
        assert not ok
        record = getattr(weight_records, f"MASKRCNN_{variant.upper()}")
        assert record.filename in why and f"--only {flag}" in why
    with pytest.raises(BackendUnavailable, match="maskrcnn_resnet50_fpn_coco"):
        create_segmenter("maskrcnn", models_dir=tmp_path)


def test_found_in_torch_hub_cache(tmp_path):
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    hub.mkdir(parents=True)
    (hub / weight_records.MASKRCNN_V1.filename).write_bytes(b"placeholder")
    assert weight_records.MASKRCNN_V1.find(tmp_path / "empty") == hub / weight_records.MASKRCNN_V1.filename


def test_bad_options(tmp_path):
    ok, why = MaskRCNNSegmenter.is_available(variant="v3")
    assert not ok and "v3" in why
    with pytest.raises(ValueError, match="score_threshold"):
        MaskRCNNSegmenter(score_threshold=2, models_dir=tmp_path)
    with pytest.raises(ValueError, match="inference_size"):
        MaskRCNNSegmenter(inference_size=8, models_dir=tmp_path)
    with pytest.raises(ValueError, match="proposals"):
        MaskRCNNSegmenter(proposals=0, models_dir=tmp_path)
    with pytest.raises(ValueError, match="max_people"):
        MaskRCNNSegmenter(max_people=0, models_dir=tmp_path)


def test_wrong_file_is_rejected(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"backbone.body.conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="does not hold Mask R-CNN"):
        MaskRCNNSegmenter(weights_path=path, device="cpu")


def test_half_backbone_on_cpu(tmp_path):
    """The CUDA half path's backbone wrapper, run on CPU (torch's CPU float16 autocast):
    float32 features within 0.5 % of the float32 backbone's, and float32 boxes, scores and
    masks out of the whole model. (Detections themselves are not compared: with random
    weights many proposals tie near a score of 1, and their order flips with any rounding;
    the GPU check reports how far the masks move.)"""
    path = save_maskrcnn("v1", tmp_path / weight_records.MASKRCNN_V1.filename)
    full = load_model("v1", path, "cpu")
    half = copy.deepcopy(full)
    half.backbone = half_backbone(half.backbone, "cpu")
    assert half.backbone.out_channels == full.backbone.out_channels
    image = torch.from_numpy(photo()).permute(2, 0, 1).float() / 255
    with torch.inference_mode():
        batch = torch.nn.functional.interpolate(full.transform([image])[0].tensors, (64, 64))
        want, got = full.backbone(batch), half.backbone(batch)
        assert list(got) == list(want)
        for name, feature in got.items():
            assert feature.dtype == torch.float32
            scale = want[name].abs().max()
            assert (feature - want[name]).abs().max() <= 5e-3 * scale, name
        half.transform.min_size, half.transform.max_size = (64,), 107
        half.rpn._post_nms_top_n["testing"] = 10
        out = half([image])[0]
    assert len(out["scores"]) > 0
    for key in ("boxes", "scores", "masks"):
        assert out[key].dtype == torch.float32, key
