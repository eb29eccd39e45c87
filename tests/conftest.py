"""Shared fixtures: the bundled sample photo, the evaluation data, and the real services."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.images import read_image_file

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
DATA = Path(os.environ.get("EVAL_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def astronaut():
    """Public-domain photo of one person, ``uint8`` 512x512x3."""
    return read_image_file(SAMPLES / "astronaut.jpg")


@pytest.fixture(scope="session")
def astronaut_bytes():
    return (SAMPLES / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="session")
def data_dir():
    if not DATA.is_dir():
        pytest.skip(f"evaluation data not found at {DATA} (../shared/data)")
    return DATA


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    """Both services as real processes on free loopback ports (embedded backends)."""
    from evaluation.services import running_services

    log_dir = tmp_path_factory.mktemp("service-logs")
    with running_services(["--backend", "mediapipe"], ["--backend", "closed-form"],
                          log_dir=log_dir) as urls:
        yield urls
