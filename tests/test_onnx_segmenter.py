"""The ``onnx`` segmenter (rembg's ONNX person models) and their download records.

The real models are 176 MB and 973 MB and cannot be downloaded here, so each test builds a
tiny ONNX model with known weights (a 1x1 convolution: mask logit = B + sum_c W_c x_c,
with the record's input size and the file name the record looks for) and runs the real
backend on it. Its mask is then worked out by hand from rembg's steps (written out per
channel, as rembg's ``normalize`` does), so a wrong size, filter, scale, mean, std,
channel order, sigmoid or stretch shows as a number that differs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
import pytest
import requests
from PIL import Image

onnx = pytest.importorskip("onnx", reason="the tests build their models with onnx (extra dev)")
pytest.importorskip("onnxruntime", reason="the onnx backend needs onnxruntime (extra onnx)")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from core import weights  # noqa: E402
from core.errors import BackendUnavailable, ConfigError, ParameterError  # noqa: E402
from core.images import read_image_file  # noqa: E402
from core.segmenters import SEGMENTERS, create_segmenter, onnx_person  # noqa: E402
from models import download  # noqa: E402

W = (0.9, -0.4, 0.25)  # the tiny model's weights on R, G, B (asymmetric: order matters)
B = 0.1
MEAN = (0.485, 0.456, 0.406)  # rembg's, for both models
STD = (0.229, 0.224, 0.225)
# model -> (input size, the network ends in a sigmoid): U^2-Net does, BiRefNet gives logits
# and rembg applies the sigmoid; either way the mask is sigmoid(logit), stretched.
MODELS = {"u2net_human_seg": (320, True), "birefnet-portrait": (1024, False)}
LANCZOS = Image.Resampling.LANCZOS


def tiny_model(path, size: int, sigmoid: bool, bias: float = B, channels: int = 3):
    """Save a 1x1-convolution model: input ``N x channels x size x size`` float, output
    ``N x 1 x size x size``, ending in a sigmoid when ``sigmoid``."""
    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", channels, size, size])
    y = helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 1, size, size])
    kernel = np.array(W[:channels], np.float32).reshape(1, channels, 1, 1)
    nodes = [helper.make_node("Conv", ["input.1", "w", "b"], ["logit" if sigmoid else "mask"])]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["logit"], ["mask"]))
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=[
        numpy_helper.from_array(kernel, "w"),
        numpy_helper.from_array(np.array([bias], np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def by_hand(photo: np.ndarray, size: int, divide_by: str = "max", bias: float = B):
    """rembg's steps for the tiny model, written out: ``(mask H x W, probability S x S)``."""
    h, w = photo.shape[:2]
    small = np.array(Image.fromarray(photo).resize((size, size), LANCZOS), np.float64)
    small = small / (small.max() if divide_by == "max" else 255.0)
    logit = bias + sum(W[c] * (small[:, :, c] - MEAN[c]) / STD[c] for c in range(3))
    prob = 1.0 / (1.0 + np.exp(-logit))
    stretched = (prob - prob.min()) / (prob.max() - prob.min())
    back = Image.fromarray(stretched.astype(np.float32)).resize((w, h), LANCZOS)
    return np.clip(np.asarray(back), 0.0, 1.0), prob


@pytest.fixture(autouse=True)
def no_rembg_folder(tmp_path_factory, monkeypatch):
    """rembg's own folder (looked in after MODELS_DIR) is an empty one, whatever this
    machine's ~/.u2net holds; the session cache starts empty."""
    monkeypatch.setenv("U2NET_HOME", str(tmp_path_factory.mktemp("u2net_home")))
    onnx_person.clear_cache()


@pytest.fixture(scope="module")
def portrait(data_dir):
    """A real photo, 786x505, made darker so that its maximum is below 255: dividing by
    the maximum (rembg) and dividing by 255 then differ."""
    folder = data_dir / "portraits" / "images"
    path = folder / "101.jpg" if (folder / "101.jpg").is_file() else sorted(folder.glob("*.jpg"))[0]
    photo = read_image_file(path)
    return (photo * 0.6).astype(np.uint8)


def models_folder(tmp_path, model: str, **kwargs):
    size, sigmoid = MODELS[model]
    tiny_model(tmp_path / weights.ONNX_PERSON[model].filename, size, sigmoid, **kwargs)
    return tmp_path


@pytest.mark.parametrize("model", sorted(MODELS))
def test_mask_is_rembgs_steps_by_hand(model, portrait, tmp_path):
    segmenter = create_segmenter("onnx", model=model, models_dir=models_folder(tmp_path, model))
    mask = segmenter.segment(portrait)
    assert mask.shape == portrait.shape[:2] and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    size = MODELS[model][0]
    assert segmenter.record.meta["input_size"] == size
    expected, prob = by_hand(portrait, size)
    assert prob.max() >= segmenter.empty_below  # somebody is there: stretched, not emptied
    np.testing.assert_allclose(mask, expected, atol=2e-5)
    # The check has teeth: rembg divides by the image's maximum, not by 255.
    assert portrait.max() < 255
    assert np.abs(mask - by_hand(portrait, size, divide_by="255")[0]).max() > 0.02
    facts = segmenter.describe()
    assert facts["name"] == "onnx" and facts["model"] == model and facts["input_size"] == size
    assert "CPUExecutionProvider" in facts["providers"]
    assert facts["licence"] == weights.ONNX_PERSON[model].licence


def test_nobody_gives_zeros_and_rembgs_stretch_is_an_option(portrait, tmp_path):
    folder = models_folder(tmp_path, "u2net_human_seg", bias=-6.0)  # p < 0.1 everywhere
    mask = create_segmenter("onnx", models_dir=folder).segment(portrait)
    assert mask.shape == portrait.shape[:2] and not mask.any()
    rembg_like = create_segmenter("onnx", models_dir=folder, empty_below=0.0).segment(portrait)
    np.testing.assert_allclose(rembg_like, by_hand(portrait, 320, bias=-6.0)[0], atol=2e-5)
    assert rembg_like.max() > 0.99  # the faint response stretched to 1, as rembg does


def test_people_come_from_the_one_mask(portrait, tmp_path):
    segmenter = create_segmenter("onnx", models_dir=models_folder(tmp_path, "u2net_human_seg"))
    people = segmenter.find_people(portrait)
    assert people.mask.shape == portrait.shape[:2] and len(people.people) >= 1
    with pytest.raises(ParameterError, match="max_people needs people told apart"):
        segmenter.segment(portrait, max_people=1)
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        segmenter.segment(portrait.astype(np.float32))


def test_missing_file_names_the_download_command(tmp_path):
    with pytest.raises(BackendUnavailable, match=r"python -m models\.download --only "
                                                 r"birefnet-portrait"):
        create_segmenter("onnx", model="birefnet-portrait", models_dir=tmp_path)


def test_rembgs_own_folder_is_looked_in(tmp_path, monkeypatch):
    rembg_home = tmp_path / "u2net"
    rembg_home.mkdir()
    models_folder(rembg_home, "u2net_human_seg")
    monkeypatch.setenv("U2NET_HOME", str(rembg_home))
    segmenter = create_segmenter("onnx", models_dir=tmp_path / "empty")
    assert segmenter.weights_path == rembg_home / "u2net_human_seg.onnx"


def test_without_onnxruntime_the_message_says_what_to_install(tmp_path, monkeypatch):
    folder = models_folder(tmp_path, "u2net_human_seg")
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # import fails
    with pytest.raises(BackendUnavailable, match=r"pip install -e \.\[onnx\]"):
        create_segmenter("onnx", models_dir=folder)


def test_configuration_mistakes_are_config_errors(tmp_path):
    folder = models_folder(tmp_path, "u2net_human_seg")
    with pytest.raises(ConfigError, match="birefnet-portrait.*u2net_human_seg.*got 'u2net'"):
        create_segmenter("onnx", model="u2net", models_dir=folder)
    with pytest.raises(ConfigError, match="no option"):
        create_segmenter("onnx", modle="u2net_human_seg", models_dir=folder)
    with pytest.raises(ConfigError, match="empty_below"):
        create_segmenter("onnx", models_dir=folder, empty_below=2)
    for device in ("tpu", "cuda:x", "cpu:0"):
        with pytest.raises(ConfigError, match="unknown device"):
            create_segmenter("onnx", models_dir=folder, device=device)
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
            create_segmenter("onnx", models_dir=folder, device="cuda")
    # A file of the right name that takes another size is refused, naming both.
    tiny_model(folder / "u2net_human_seg.onnx", 256, True)
    with pytest.raises(ConfigError, match=r"\[.N., 3, 256, 256\].*N x 3 x 320 x 320"):
        create_segmenter("onnx", models_dir=folder)


def test_auto_stays_offline_first(tmp_path, monkeypatch):
    """With an ONNX model present, ``auto`` still picks what it picked before (MediaPipe
    here, without Mask R-CNN weights): ``onnx`` is chosen by name."""
    assert list(SEGMENTERS)[-1] == "onnx"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("MODELS_DIR", str(models_folder(tmp_path, "u2net_human_seg")))
    try:
        chosen = create_segmenter("auto", {"mediapipe": {"mode": "fast"}})
    except BackendUnavailable as exc:
        pytest.skip(f"neither Mask R-CNN nor MediaPipe here: {exc}")
    assert chosen.name == "mediapipe"


# ------------------------------------------------------------------ download verification


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_onnx_models_are_downloaded_only_when_asked_for():
    assert set(weights.ONNX_PERSON) <= set(weights.RECORD_NAMES)
    assert not set(weights.ONNX_PERSON) & set(download.DEFAULT_NAMES)
    assert download.DEFAULT_NAMES == ("fba", "maskrcnn", "maskrcnn_v2")
    for record in weights.ONNX_PERSON.values():
        assert record.url.startswith(weights.REMBG_RELEASE) and len(record.md5) == 32
        assert record.filename == record.name + ".onnx"  # rembg's own name for the file
        assert weights.record(record.name) is record


def test_verification_accepts_the_right_checksum(tmp_path, monkeypatch, capsys):
    path = models_folder(tmp_path, "u2net_human_seg") / "u2net_human_seg.onnx"
    record = dataclasses.replace(weights.U2NET_HUMAN_SEG, md5=md5(path))
    monkeypatch.setitem(weights.ONNX_PERSON, "u2net_human_seg", record)
    assert download.main(["--only", "u2net_human_seg", "--models-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "already there; verifying" in err
    assert "MD5 ok, loads with onnxruntime, input ['N', 3, 320, 320]" in err
    assert hashlib.sha256(path.read_bytes()).hexdigest() in err  # printed for pinning


def test_verification_rejects_a_wrong_checksum(tmp_path, capsys):
    """The tiny model is not rembg's file: the published MD5 tells them apart."""
    path = models_folder(tmp_path, "u2net_human_seg") / "u2net_human_seg.onnx"
    assert download.main(["--only", "u2net_human_seg", "--models-dir", str(tmp_path)]) == \
        download.EXIT_INVALID
    err = capsys.readouterr().err
    assert f"MD5 {md5(path)} is not the published c09ddc2e0104f800e3e1bb4652583d1f" in err


def test_verification_rejects_a_model_of_another_size(tmp_path):
    path = tiny_model(tmp_path / "birefnet-portrait.onnx", 320, False)  # BiRefNet takes 1024
    record = dataclasses.replace(weights.BIREFNET_PORTRAIT, md5=md5(path))
    with pytest.raises(download.VerificationError, match="N x 3 x 1024 x 1024"):
        download.verify_onnx(record, path)
    path.write_bytes(b"<html>not found</html>")
    record = dataclasses.replace(record, md5=md5(path))
    with pytest.raises(download.VerificationError, match="does not load as an ONNX model"):
        download.verify_onnx(record, path)


def test_unreachable_server_fails_fast_and_says_where_to_put_the_file(tmp_path, monkeypatch,
                                                                      capsys):
    from evaluation.services import free_port

    url = f"http://127.0.0.1:{free_port()}/u2net_human_seg.onnx"  # nothing listens there
    record = dataclasses.replace(weights.U2NET_HUMAN_SEG, url=url)
    monkeypatch.setitem(weights.ONNX_PERSON, "u2net_human_seg", record)
    status = download.main(["--only", "u2net_human_seg", "--models-dir", str(tmp_path),
                            "--connect-timeout", "2"])
    assert status == download.EXIT_NETWORK
    err = capsys.readouterr().err
    assert "cannot reach 127.0.0.1" in err and str(tmp_path / "u2net_human_seg.onnx") in err
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ the real service


def test_segmentation_service_with_the_onnx_backend(tmp_path, astronaut, astronaut_bytes):
    from evaluation.services import free_port, start_service, stop, wait_healthy

    (tmp_path / "models").mkdir()
    folder = models_folder(tmp_path / "models", "u2net_human_seg")
    port = free_port()
    env = {"SEGMENTATION_BACKEND": "onnx", "ONNX_MODEL": "u2net_human_seg",
           "MODELS_DIR": str(folder), "SEGMENTATION_WORKERS": "1"}
    process = start_service("segmentation_api", port, env=env, log_path=tmp_path / "seg.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, timeout=120)
        backend = requests.get(url + "/health", timeout=10).json()["backend"]
        assert backend["name"] == "onnx" and backend["model"] == "u2net_human_seg"
        r = requests.post(url + "/mask", files={"image": astronaut_bytes},
                          data={"format": "npy"}, timeout=120)
        assert r.status_code == 200, r.text
        mask = np.load(io.BytesIO(r.content))
        np.testing.assert_allclose(mask, by_hand(astronaut, 320)[0], atol=2e-5)
        r = requests.post(url + "/mask", files={"image": astronaut_bytes},
                          data={"max_people": "1"}, timeout=120)
        assert r.status_code == 400 and "max_people" in r.text
    finally:
        stop(process)
