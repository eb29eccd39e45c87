"""The web page at ``/``: drop a photo (or a video), pick a background, compare, download.

Served by the matting service from this package (a Jinja template and static files: no CDN,
works offline). The page calls the same HTTP API as any client (``POST /matte``, and
``/jobs`` for videos when the job queue is configured); nothing here computes anything.
"""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from core.compositing import FIT_MODES

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static",
               static_url_path="/web")


@bp.get("/")
def page():
    return render_template("index.html", fit_modes=FIT_MODES,
                           max_upload_mb=current_app.config["MAX_UPLOAD_MB"])
