"""The HTTP side of jobs: a blueprint the matting service registers.

    POST   /jobs                a video (or a zip of photos) + parameters -> 202, Location
    GET    /jobs/<id>           state, frames done / total, frames per second, time left, error
    GET    /jobs/<id>/result    the result file (range requests answered: resumable downloads)
    DELETE /jobs/<id>           cancel a job; a finished one is removed with its result

The service does no video work itself: it checks the request (parameters, and that the
upload is a video FFmpeg opens or a zip with photos in it) before anything is queued, so a
bad upload is a 4xx at once, not a failed job later; then it stores the upload in the
shared folder, records the job in Redis and queues its first step. Without a reachable
Redis every endpoint answers 503, saying how to start one.
"""
from __future__ import annotations

import logging
import re
import shutil
import zipfile
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request, send_file
from werkzeug.utils import secure_filename

from core.errors import ParameterError, UserError
from core.images import decode_image
from core.video.errors import VideoError
from core.video.reader import IMAGE_SUFFIXES, VIDEO_SUFFIXES, probe
from jobs.params import FIELDS, FILE_FIELDS, parse
from jobs.store import ACTIVE, CANCELLED, JobStore, QueueUnavailable, new_job_id, redacted_url
from service_common.errors import APIError, ServiceUnavailable
from service_common.openapi import Field, Operation, error_responses
from service_common.wire import check_params, params

log = logging.getLogger(__name__)

bp = Blueprint("jobs", __name__)

JOB_ID = Field("job_id", {"type": "string"}, "the job's id (from POST /jobs)")
JOB_JSON = (("application/json",), "the job: id, state (queued, running, joining, done, "
            "failed, cancelled), frames_done, frames_total, frames_per_second, seconds_left, "
            "error, times, chunks, workers, output, result (its URL once done)")
RESULT_TYPES = ("video/mp4", "video/quicktime", "video/x-matroska", "video/webm", "application/zip")
OPERATIONS = [
    Operation("/jobs", "POST", "Start a video or photo-batch job (answers at once with its id)",
              FIELDS, responses={202: JOB_JSON, **error_responses(400, 413, 429, 503)}),
    Operation("/jobs/{job_id}", "GET", "A job's state and progress", [JOB_ID],
              responses={200: JOB_JSON, **error_responses(404, 429, 503)}),
    Operation("/jobs/{job_id}", "DELETE", "Cancel a job; a finished one is removed with its result",
              [JOB_ID], responses={200: JOB_JSON, **error_responses(404, 429, 503)}),
    Operation("/jobs/{job_id}/result", "GET", "A finished job's result (range requests answered)",
              [JOB_ID], responses={200: (RESULT_TYPES, "the result file"),
                                   206: (RESULT_TYPES, "the part asked for (Range)"),
                                   **error_responses(404, 409, 416, 429, 503)}),
]
# Zip bombs: the photos' unpacked size may be at most this many times the upload limit.
MAX_UNPACKED_RATIO = 20
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")


_MISSING = ("jobs need the celery and redis packages, which are not installed here: "
            "pip install 'people-matting[jobs]'")


def _store() -> JobStore:
    store = current_app.extensions.get("job_store")
    if store is None:
        try:
            store = JobStore.from_config(current_app.config)
        except ImportError:
            raise ServiceUnavailable(_MISSING, "jobs_not_installed") from None
        current_app.extensions["job_store"] = store
    return store


def _celery():
    app = current_app.extensions.get("job_queue")
    if app is None:
        try:
            from jobs.queue import make_celery
        except ImportError:
            raise ServiceUnavailable(_MISSING, "jobs_not_installed") from None
        app = current_app.extensions["job_queue"] = make_celery(current_app.config)
    return app


def _suffix(filename: str | None, default: str) -> str:
    suffix = Path(filename or "").suffix.lower()
    return suffix if _SUFFIX.match(suffix) else default


def _check_video(path: Path) -> None:
    """A video FFmpeg opens, with a video stream and a first frame, of a size we take.

    Raises:
        VideoError (400): anything else.
    """
    info = probe(path)
    limit = int(current_app.config["MAX_PIXELS"])
    if info.width * info.height > limit:
        raise VideoError(f"the video is {info.width}x{info.height}, more than MAX_PIXELS="
                         f"{limit} pixels a frame")


def _check_photos(path: Path) -> int:
    """A zip with photos in it, not unpacking to more than the limit allows.

    Raises:
        UserError (400, ``invalid_zip``).
    """
    from jobs.work import photo_names

    names = photo_names(path)
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(archive.getinfo(n).file_size for n in names)
    limit = MAX_UNPACKED_RATIO * int(current_app.config["MAX_UPLOAD_MB"]) * 1024 * 1024
    if unpacked > limit:
        raise UserError(f"the photos unpack to {unpacked / 2**20:.0f} MB, more than "
                        f"{limit / 2**20:.0f} MB ({MAX_UNPACKED_RATIO} x MAX_UPLOAD_MB)",
                        code="invalid_zip")
    return len(names)


def _check_background(path: Path, kind: str) -> None:
    if path.suffix in IMAGE_SUFFIXES or kind == "photos":
        decode_image(path.read_bytes(), int(current_app.config["MAX_PIXELS"]))
    elif path.suffix in VIDEO_SUFFIXES:
        _check_video(path)
    else:
        try:
            decode_image(path.read_bytes(), int(current_app.config["MAX_PIXELS"]))
        except UserError:
            _check_video(path)  # neither an image nor a video: the video's message


@bp.post("/jobs")
def submit():
    values = params()
    # background may be text (a colour) or a file; the uploads may only be files.
    check_params(values, {f.name for f in FIELDS if not f.file} | {"background"},
                 file_fields=("video", "photos"))
    unknown = sorted(set(request.files) - set(FILE_FIELDS))
    if unknown:
        raise ParameterError(f"unknown file field(s) {unknown}; valid: {list(FILE_FIELDS)}",
                             code="unknown_parameter")
    sent = [name for name in ("video", "photos") if name in request.files]
    if len(sent) != 1:
        raise APIError("send one video (-F video=@clip.mp4) or one zip of photos "
                       "(-F photos=@photos.zip)" + (", not both" if sent else ""),
                       code="missing_field")
    field = sent[0]
    kind = "video" if field == "video" else "photos"
    upload = request.files[field]
    background = request.files.get("background")
    background_name = None
    if background is not None:
        background_name = "background" + _suffix(background.filename, ".bin")
    job_params = parse(values, kind, background_name)

    store = _store()
    job_id = new_job_id()
    folder = store.folder_of(job_id)
    input_name = "input" + (_suffix(upload.filename, ".video") if kind == "video" else ".zip")
    try:
        folder.mkdir(parents=True)
        upload.save(folder / input_name)
        if (folder / input_name).stat().st_size == 0:
            raise APIError(f"the {field} file is empty", code="missing_field")
        if kind == "video":
            _check_video(folder / input_name)
        else:
            _check_photos(folder / input_name)
        if background is not None:
            background.save(folder / background_name)
            _check_background(folder / background_name, kind)
        upload_name = secure_filename(upload.filename or "") or f"upload{Path(input_name).suffix}"
        store.ping()
        store.create(job_id, kind, job_params.to_dict(), upload_name, input_name,
                     download_name=job_params.result_name(upload_name),
                     media_type=job_params.media_type)
        _send(job_id)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        store.sweep()
    except Exception:  # noqa: BLE001 - tidying up must not fail a submission
        log.warning("sweeping expired jobs failed", exc_info=True)
    log.info("job %s queued: %s %s, %s", job_id, kind, upload_name, job_params.output)
    response = jsonify(store.public(store.require(job_id)))
    response.status_code = 202
    response.headers["Location"] = f"/jobs/{job_id}"
    return response


def _send(job_id: str) -> None:
    """Queue the job's first step; a broker that refuses is a 503 (and no job)."""
    from kombu.exceptions import OperationalError

    try:
        _celery().send_task("jobs.plan", args=[job_id])
    except OperationalError as exc:
        _store().delete(job_id)
        raise QueueUnavailable(current_app.config["JOBS_REDIS_URL"], str(exc)) from None


@bp.get("/jobs/<job_id>")
def status(job_id: str):
    store = _store()
    return jsonify(store.public(store.require(job_id)))


@bp.delete("/jobs/<job_id>")
def cancel(job_id: str):
    store = _store()
    record = store.require(job_id)
    if record["state"] in ACTIVE and store.transition(job_id, ACTIVE, CANCELLED,
                                                      error="cancelled by the client"):
        # Workers notice within half a second and stop; what they leave is swept later.
        folder = store.folder_of(job_id)
        for part in ("chunks", record.get("input")):
            path = folder / part if part else None
            if path is not None and path.exists():
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        log.info("job %s cancelled", job_id)
        return jsonify(store.public(store.require(job_id)))
    record = store.require(job_id)
    if record["state"] in ACTIVE:  # it moved on between the two reads: try again
        return cancel(job_id)
    shown = {**store.public(record), "state": "deleted", "result": None}
    store.delete(job_id)
    log.info("job %s removed with its result", job_id)
    return jsonify(shown)


@bp.get("/jobs/<job_id>/result")
def result(job_id: str):
    store = _store()
    record = store.require(job_id)
    if record["state"] != "done":
        message = {"failed": f"the job failed: {record.get('error')}",
                   "cancelled": "the job was cancelled"}.get(
            record["state"], f"the job is {record['state']}; poll GET /jobs/{job_id} until "
                             "its state is done")
        raise UserError(message, status=409, code=f"job_{record['state']}")
    path = store.folder_of(job_id) / record["result"]
    if not path.is_file():
        raise UserError(f"the result of job {job_id} is gone (removed after JOBS_KEEP_HOURS)",
                        status=404, code="job_not_found")
    return send_file(path, mimetype=record.get("media_type") or None, as_attachment=True,
                     download_name=record.get("download_name") or path.name, conditional=True,
                     max_age=0)


def health_facts(app) -> dict:
    """What ``/health`` says about jobs: whether the queue answers, workers, tasks waiting."""
    try:
        store = app.extensions.get("job_store") or JobStore.from_config(app.config)
        app.extensions["job_store"] = store
        return {"queue": "reachable", "redis": redacted_url(store.url), **store.queue_facts()}
    except QueueUnavailable:
        return {"queue": "unreachable", "redis": redacted_url(app.config["JOBS_REDIS_URL"])}
    except ImportError:
        return {"queue": "not installed (pip install 'people-matting[jobs]')"}


def init_app(app) -> None:
    """Register the jobs endpoints (nothing connects to Redis until a request needs it)."""
    app.register_blueprint(bp)
