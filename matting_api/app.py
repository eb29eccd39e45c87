"""Entry point for ``flask run`` inside this folder, as in the original project.

Flask puts this folder, not the repo root, on ``sys.path``: add the root first.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service_common.config import app_for_flask_run  # noqa: E402

app = app_for_flask_run("matting_api")
