"""Messages users read: a refused output file name is shown as the user typed it (the 413
message is tested with the other error answers in test_errors.py); a service's start-up
configuration mistake is one line on stderr and exit status 2, before gunicorn starts."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.images import format_for_path


def test_refused_output_format_shows_the_plain_path():
    with pytest.raises(ValueError) as info:
        format_for_path(Path("out") / "result.gifx")
    assert "PosixPath" not in str(info.value) and "'out/result.gifx'" in str(info.value)


# --- start-up: a configuration mistake is one line and exit status 2, before gunicorn ---

def start_up(package: str, *args: str, env: dict | None = None, tmp_path=None):
    """``python -m <package> --port <free> ARGS`` as a user runs it; it is expected to stop
    at once. ``TMPDIR`` points into ``tmp_path`` (where a metrics folder would be made)."""
    import os
    import subprocess
    import sys

    from evaluation.services import REPO_ROOT, free_port

    full_env = {k: v for k, v in os.environ.items()
                if k != "PROMETHEUS_MULTIPROC_DIR" and k != "LOG_LEVEL"}
    full_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    if tmp_path is not None:
        full_env["TMPDIR"] = str(tmp_path)
    return subprocess.run([sys.executable, "-m", package, "--port", str(free_port()), *args],
                          cwd=REPO_ROOT, env=full_env, capture_output=True, text=True,
                          timeout=240)


def assert_one_line_usage_error(result, package: str, words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"python -m {package}: error: ") and words in lines[0], lines
    assert "Traceback" not in result.stderr + result.stdout
    assert "Listening at" not in result.stderr + result.stdout  # gunicorn never started


def test_a_mistyped_variable_is_one_line_and_exit_2(tmp_path):
    result = start_up("matting_api", env={"MATTING_PORTT": "1"}, tmp_path=tmp_path)
    assert_one_line_usage_error(result, "matting_api",
                                "unknown setting MATTING_PORTT in the environment; "
                                "did you mean MATTING_PORT?")


@pytest.mark.parametrize("package, kind", [("segmentation_api", "segmentation"),
                                           ("matting_api", "matting")])
def test_an_unknown_backend_is_refused_before_gunicorn_starts(tmp_path, package, kind):
    result = start_up(package, "--backend", "nonsense", tmp_path=tmp_path)
    assert_one_line_usage_error(result, package, f"unknown {kind} backend 'nonsense'; choose "
                                "one of ['auto'")
    # No second error from the metrics folder, and none left behind.
    assert "counter_" not in result.stderr and "FileNotFoundError" not in result.stderr
    assert not list(tmp_path.glob("people-matting-metrics-*"))


@pytest.mark.parametrize("args, words", [
    (["--backend", "mediapipe", "--mediapipe-mode", "fastest"], "mediapipe mode must be one of"),
    (["--queue", "-1"], "SEGMENTATION_QUEUE / --queue: cannot use '-1': must be 0 or more"),
    (["--port", "70000"], "SEGMENTATION_PORT / --port: cannot use '70000'"),
    (["--workers", "none"], "SEGMENTATION_WORKERS / --workers: cannot use 'none'"),
    (["--log-level", "loud"], "LOG_LEVEL / --log-level: cannot use 'loud': use one of DEBUG"),
])
def test_bad_values_and_options_are_one_line_and_exit_2(tmp_path, args, words):
    result = start_up("segmentation_api", *args, tmp_path=tmp_path)
    assert_one_line_usage_error(result, "segmentation_api", words)


def test_a_backend_without_its_weights_names_the_download_command(tmp_path):
    pytest.importorskip("torchvision")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = start_up("segmentation_api", "--backend", "maskrcnn", "--models-dir", str(empty),
                      env={"TORCH_HOME": str(empty)}, tmp_path=tmp_path)
    assert_one_line_usage_error(result, "segmentation_api",
                                "segmentation backend 'maskrcnn' cannot run")
    assert "python -m models.download --only maskrcnn" in result.stderr


def test_the_traceback_of_a_start_up_mistake_is_kept_for_debug_level(tmp_path):
    result = start_up("matting_api", "--backend", "nonsense", "--log-level", "debug",
                      tmp_path=tmp_path)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "DEBUG" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("python -m matting_api: error: "
                                                             "unknown matting backend")
