"""``python -m models.download``: fails fast and clearly offline, verifies what it finds.

These tests need no internet: where there is none (as on CI), the real command must stop
with a clear message and a nonzero status within seconds, never hang.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import weights
from models import download

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, timeout=120):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "models.download", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def _internet() -> bool:
    try:
        socket.create_connection(("drive.google.com", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(_internet(), reason="this machine reaches Google Drive: the offline "
                                        "behaviour cannot be observed here")
def test_offline_fba_fails_fast_with_a_clear_message(tmp_path):
    proc, seconds = run_cli("--only", "fba", "--models-dir", str(tmp_path))
    assert proc.returncode == download.EXIT_NETWORK, proc.stderr
    assert seconds < 60
    assert "cannot reach drive.google.com" in proc.stderr
    assert "NON-COMMERCIAL" in proc.stderr  # the licence is explained first
    assert str(tmp_path / "FBA.pth") in proc.stderr  # where to put a manual download
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


@pytest.fixture
def silent_server():
    """A server that accepts connections and never answers (a black-holed download)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/FBA.pth"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_silent_server_times_out_instead_of_hanging(tmp_path, silent_server):
    proc, seconds = run_cli("--only", "fba", "--models-dir", str(tmp_path),
                            "--fba-url", silent_server, "--connect-timeout", "2")
    assert proc.returncode == download.EXIT_NETWORK, proc.stderr
    assert seconds < 30
    assert "timed out" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_existing_bad_file_fails_verification(tmp_path):
    (tmp_path / "FBA.pth").write_bytes(b"<html>quota exceeded</html>")
    proc, _ = run_cli("--only", "fba", "--models-dir", str(tmp_path))
    assert proc.returncode == download.EXIT_INVALID
    assert "about 139 MB" in proc.stderr


def test_existing_torchvision_file_is_hash_checked(tmp_path, capsys):
    pytest.importorskip("torchvision")
    (tmp_path / weights.MASKRCNN_V1.filename).write_bytes(b"not the weights")
    assert download.main(["--only", "maskrcnn", "--models-dir", str(tmp_path)]) == \
        download.EXIT_INVALID
    assert "does not start with bf2d0c1e" in capsys.readouterr().err


def test_existing_fba_file_is_verified(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from core.matters.fba_net import FBANet

    torch.save(FBANet().state_dict(), tmp_path / "FBA.pth")
    assert download.main(["--only", "fba", "--models-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "197 tensors as in the manifest" in err and "sha256" in err


def test_wrong_tensors_fail_verification(tmp_path):
    torch = pytest.importorskip("torch")
    from core.matters.fba_net import FBANet

    state = FBANet().state_dict()
    state["decoder.extra"] = torch.zeros(1)
    del state["decoder.conv_up4.4.bias"]
    torch.save(state, tmp_path / "FBA.pth")
    with pytest.raises(download.VerificationError, match="conv_up4.4.bias"):
        download.verify_fba(tmp_path / "FBA.pth")


def test_drive_confirmation_page_is_followed():
    page = ('<form id="download-form" action="https://drive.usercontent.google.com/download"'
            ' method="get"><input type="hidden" name="id" value="abc">'
            '<input type="hidden" name="export" value="download">'
            '<input type="hidden" name="confirm" value="t"></form>')
    assert download._drive_confirm_url(page) == (
        "https://drive.usercontent.google.com/download?id=abc&export=download&confirm=t")
    assert download._drive_confirm_url("<html>no form</html>") is None


def test_records():
    assert weights.FBA.filename == "FBA.pth" and weights.FBA_DRIVE_ID in weights.FBA.url
    assert "non-commercial" in weights.FBA.licence
    pytest.importorskip("torchvision")
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights, MaskRCNN_ResNet50_FPN_Weights

    assert weights.MASKRCNN_V1.url == MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url
    assert weights.MASKRCNN_V2.url == MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.url
    assert weights.MASKRCNN_V1.filename.endswith(".pth") and weights.MASKRCNN_V1.torchvision
    assert "person" in weights.MASKRCNN_V1.meta["categories"]
    assert [weights.record(n).name for n in weights.RECORD_NAMES] == list(weights.RECORD_NAMES)
    with pytest.raises(KeyError, match="unknown weights"):
        weights.record("sam")


def test_models_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    assert weights.FBA.path() == tmp_path / "FBA.pth"
    assert weights.FBA.find() is None
    (tmp_path / "FBA.pth").write_bytes(b"x")
    assert weights.FBA.find() == tmp_path / "FBA.pth"
    assert weights.models_dir(tmp_path / "other") == tmp_path / "other"
