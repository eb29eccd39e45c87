"""FBA Matting without the real weights: the numerical reference proves the network.

``fba_reference_random_weights.npz`` holds the authors' network and pipeline run with
weights made by a fixed recipe (see ``../shared/fba/README.md``). We rebuild those weights
(:mod:`models.random_weights`), save them as a ``.pth`` file, load it the way users load
``FBA.pth`` (strict) and compare every stage. If this passes, the published file loads and
computes what its authors' code computes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core.matters import create_matter  # noqa: E402
from core.matters.fba import FBAMatter, encode_trimap, fba_predict, run_network  # noqa: E402
from core.matters.fba_net import MANIFEST_PATH, FBANet, extract_state_dict, load_fba  # noqa: E402
from core.registry import BackendUnavailable  # noqa: E402
from core.trimap import from_two_channel  # noqa: E402
from models.random_weights import save_fba  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_CANDIDATES = [ROOT / "tests" / "data" / "fba_reference_random_weights.npz",
                        ROOT.parent / "shared" / "fba" / "reference_random_weights.npz"]


def _reference_path() -> Path | None:
    return next((p for p in REFERENCE_CANDIDATES if p.is_file()), None)


@pytest.fixture(scope="module")
def reference():
    path = _reference_path()
    if path is None:
        pytest.skip("FBA numerical reference not found (tests/data or ../shared/fba)")
    return dict(np.load(path))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fba") / "FBA.pth"
    save_fba(path)
    return path


@pytest.fixture(scope="module")
def net(weights_file):
    return load_fba(weights_file, "cpu")


def test_state_dict_matches_manifest():
    keys = json.loads(MANIFEST_PATH.read_text())["keys"]
    state = FBANet().state_dict()
    assert [(k["name"], tuple(k["shape"])) for k in keys] == \
        [(name, tuple(t.shape)) for name, t in state.items()]
    assert sum(t.numel() for t in state.values()) == 34_693_031


def test_trimap_encoding(reference):
    got = encode_trimap(reference["trimap_scaled"])
    assert got.shape == (6, 104, 152) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference["trimap_transform"], atol=1e-4, rtol=0)


def test_raw_network_output(reference, net):
    out = run_network(net, reference["image_scaled"], reference["trimap_scaled"],
                      reference["trimap_transform"])
    assert out.shape == (7, 104, 152) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference["network_output"], atol=1e-4, rtol=0)


def test_half_network_on_cpu(reference, weights_file, net):
    """The half-precision path, run where no GPU is: torch has float16 convolutions on the
    CPU too (slow, hence a crop). The network takes float32 inputs, computes in float16 and
    returns float32 from a float32 fusion; its numbers stay near the float32 network's.
    The alpha bound is loose: float16 activations put about 1e-2 on alpha here, and the
    fusion passes them on (measured 0.018 with a float16 fusion too, so it is the
    network's rounding, not the fusion's; the GPU check measures it on CUDA)."""
    crop = (slice(16, 64), slice(40, 104))  # 48 x 64, across the unknown band
    image8 = reference["image_scaled"][crop]
    trimap8 = reference["trimap_scaled"][crop]
    encoded = encode_trimap(trimap8)
    half = load_fba(weights_file, "cpu").half()
    assert half.encoder.conv1.weight.dtype == torch.float16
    seen = []
    half.register_forward_hook(lambda module, inputs, output: seen.append(
        ([t.dtype for t in inputs], output.dtype)))
    out16 = run_network(half, image8, trimap8, encoded)
    assert seen == [([torch.float32] * 3, torch.float32)]  # float32 in, float32 out
    out32 = run_network(net, image8, trimap8, encoded)
    assert out16.dtype == np.float32 and np.isfinite(out16).all()
    diff = np.abs(out16 - out32).reshape(7, -1).max(axis=1)
    assert diff[0] < 0.03 and diff[1:].max() < 0.005, diff


def test_final_outputs(reference, net):
    alpha, fg, bg = fba_predict(net, reference["image"], reference["trimap"])
    np.testing.assert_allclose(alpha, reference["alpha"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(fg, reference["fg"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(bg, reference["bg"], atol=1e-3, rtol=0)


def test_matter_end_to_end(reference, weights_file):
    """The backend users get (uint8 trimap, float32 image) gives the reference numbers."""
    matter = FBAMatter(weights_path=weights_file, device="cpu")
    image = reference["image"].astype(np.float32)
    trimap = from_two_channel(reference["trimap"])
    alpha, fg = matter.matte(image, trimap)
    assert alpha.shape == (100, 150) and alpha.dtype == np.float32
    assert fg.shape == (100, 150, 3) and fg.dtype == np.float32
    np.testing.assert_allclose(alpha, reference["alpha"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(fg, reference["fg"], atol=1e-3, rtol=0)
    assert np.all(alpha[trimap == 0] == 0) and np.all(alpha[trimap == 255] == 1)
    # The model is loaded once per process.
    assert FBAMatter(weights_path=weights_file, device="cpu").net is matter.net


def test_matter_caps_size(reference, weights_file):
    matter = FBAMatter(weights_path=weights_file, device="cpu", max_size=64)
    image = reference["image"].astype(np.float32)
    trimap = from_two_channel(reference["trimap"])
    alpha, fg, bg = matter.predict(image, trimap)
    assert alpha.shape == (100, 150) and fg.shape == bg.shape == (100, 150, 3)
    for array in (alpha, fg, bg):
        assert array.dtype == np.float32 and array.min() >= 0 and array.max() <= 1
    assert np.all(alpha[trimap == 0] == 0) and np.all(alpha[trimap == 255] == 1)
    np.testing.assert_array_equal(fg[alpha == 1], image[alpha == 1])


def test_max_size_option(weights_file):
    assert FBAMatter(weights_path=weights_file, device="cpu").max_size == 1280
    assert FBAMatter(weights_path=weights_file, device="cpu", max_size=None).max_size is None
    assert FBAMatter(weights_path=weights_file, device="cpu", max_size="800").max_size == 800
    with pytest.raises(ValueError, match="max_size"):
        FBAMatter(weights_path=weights_file, device="cpu", max_size=-5)
    with pytest.raises(ValueError, match="max_size"):
        FBAMatter(weights_path=weights_file, device="cpu", max_size="big")


def test_matte_rejects_bad_shapes(weights_file):
    matter = FBAMatter(weights_path=weights_file, device="cpu")
    with pytest.raises(ValueError, match="does not match"):
        matter.matte(np.zeros((10, 10, 3), np.float32), np.zeros((10, 11), np.uint8))
    with pytest.raises(ValueError, match="H x W x 3"):
        matter.matte(np.zeros((10, 10), np.float32), np.zeros((10, 10), np.uint8))


def test_checkpoint_wrappers_are_accepted():
    tensor = torch.zeros(2)
    plain = {"encoder.bn1.weight": tensor}
    assert extract_state_dict(plain) == plain
    assert extract_state_dict({"state_dict": plain}) == plain
    assert extract_state_dict({"module.encoder.bn1.weight": tensor}) == plain
    with pytest.raises(ValueError, match="not a state dict"):
        extract_state_dict({"epoch": 3})


def test_wrapped_file_loads(tmp_path):
    state = {f"module.{k}": v for k, v in FBANet().state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    net = load_fba(tmp_path / "wrapped.pth")
    assert not net.training


def test_wrong_file_is_rejected(tmp_path):
    torch.save({"encoder.conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="does not hold FBA"):
        load_fba(tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError):
        load_fba(tmp_path / "missing.pth")


def test_unavailable_without_weights(tmp_path):
    ok, why = FBAMatter.is_available(models_dir=tmp_path)
    assert not ok
    assert "FBA.pth" in why and "models.download" in why
    with pytest.raises(BackendUnavailable, match="FBA.pth"):
        create_matter("fba", models_dir=tmp_path)


def test_available_with_weights(weights_file):
    ok, why = FBAMatter.is_available(models_dir=weights_file.parent, device="cpu")
    assert ok, why
