"""The HTTP side of jobs: a blueprint the matting service registers.

    POST   /jobs                a video (or a zip of photos) + parameters -> 202, Location
    GET    /jobs/<id>           state, frames done / total, frames per second, time left, error
    GET    /jobs/<id>/result    the result file (range requests answered: resumable downloads)
    DELETE /jobs/<id>           cancel a job; a finished one is removed with its result

The service does no video work itself: it checks the request (parameters, and by their
content, whatever their names, that the upload is a video whose first frame FFmpeg decodes
or a zip with photos in it, and that a background file is an image or a video) before
anything is queued, so a bad upload is a 4xx at once, not a failed job later; then it
stores the upload in the shared folder, records the job in Redis and queues its first step.
Messages name an upload by its field and file name, never by its path on the server (that
and FFmpeg's own words go to the log). Without a reachable Redis every endpoint answers
503, saying how to start one.
"""
from __future__ import annotations

import logging
import re
import shutil
import zipfile
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request, send_file
from werkzeug.utils import secure_filename

from core.errors import ImageError, ParameterError, UserError
from core.images import decode_image
from core.video.errors import VideoError
from core.video.reader import IMAGE_SUFFIXES, open_input, probe
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


def _shown_name(filename: str | None) -> str:
    """The upload's name as its sender knows it (no folders, no control characters)."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name if len(name) <= 80 else name[:77] + "..."


def _label(field: str, filename: str | None) -> str:
    """How messages name an upload: ``video 'clip.mp4'``, ``photos zip 'holiday.zip'``
    (never the server's path)."""
    name = _shown_name(filename)
    what = "photos zip" if field == "photos" else field
    return f"{what} {name!r}" if name else f"{what} upload"


def _scrub(text: str, path: Path, label: str) -> str:
    """A message about the file at ``path`` as the client may see it: the path becomes the
    upload's ``label``, FFmpeg's and the OS's error numbers go."""
    for form in (repr(str(path)), str(path)):
        text = text.replace(form, f"the {label}")
    return re.sub(r"\[Errno -?\d+\]\s*", "", text)


def _check_not_empty(path: Path, field: str, filename: str | None) -> None:
    if path.stat().st_size == 0:
        name = _shown_name(filename)
        what = f"the uploaded file {name!r} ({field})" if name else f"the {field} upload"
        raise APIError(f"{what} is empty (0 bytes): check that the file has content on your "
                       f"side (a download or copy that did not finish?) and send it again "
                       f"(curl -F {field}=@FILE)", code="empty_upload")


VIDEO_FIX = ("send a video file FFmpeg reads (MP4, MOV, MKV, WebM...); what counts is the "
             "file's content, not its name")
BACKGROUND_FIX = ("send an image (JPEG, PNG, WebP...) or a video as the background file, or a "
                  "colour or blur as text (-F background=#1e90ff)")


class _Unfit(Exception):
    """What is wrong with a file, without naming it: ``problem`` completes "the upload ...",
    ``reason`` is the short form; ``error`` the class to raise, ``fix`` a fix of its own."""

    def __init__(self, problem: str, reason: str, error=VideoError, fix: str | None = None):
        super().__init__(problem)
        self.problem, self.reason, self.error, self.fix = problem, reason, error, fix

    def raise_for(self, label: str, fix: str):
        raise self.error(f"the {label} {self.problem}; {self.fix or fix}") from None


def _video_problems(path: Path, label: str) -> None:
    """Raises :class:`_Unfit` unless the workers can convert the video at ``path``: FFmpeg
    opens it by its content (a name ending in .jpg or .mp4 proves nothing), it has a video
    stream whose first frame decodes to a picture of non-zero size within MAX_PIXELS, and
    its frame rate is known. The server's path and FFmpeg's own text go to the log."""
    import av

    try:
        container = open_input(path)
    except av.error.FFmpegError as exc:
        log.info("%s (%s): FFmpeg cannot open it: %s", label, path, exc)
        reason = _ffmpeg_reason(exc)
        raise _Unfit(f"is not a video FFmpeg can read ({reason})", reason) from None
    with container:
        if not container.streams.video:
            what = "only sound" if container.streams.audio else "no picture"
            raise _Unfit(f"has no video stream ({what})", f"no video stream ({what})")
        stream = container.streams.video[0]
        try:
            frame = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            log.info("%s (%s): its first frame does not decode: %s", label, path, exc)
            reason = _ffmpeg_reason(exc)
            raise _Unfit(f"has no picture FFmpeg can decode ({reason})",
                         f"no picture FFmpeg can decode ({reason})") from None
        if frame is None:
            raise _Unfit("has no frames", "no frames")
        if frame.width <= 0 or frame.height <= 0:
            raise _Unfit(f"has frames of {frame.width}x{frame.height} pixels",
                         f"frames of {frame.width}x{frame.height} pixels")
    try:
        info = probe(path)
    except VideoError as exc:
        log.info("%s (%s): %s", label, path, exc.message)
        reason = _scrub(exc.message, path, "file")
        raise _Unfit(f"cannot be converted ({reason})", reason) from None
    limit = int(current_app.config["MAX_PIXELS"])
    if info.width * info.height > limit:
        size = f"{info.width}x{info.height}, more than MAX_PIXELS={limit} pixels a frame"
        raise _Unfit(f"is {size}", size, fix="send a smaller video (e.g. ffmpeg -i IN -vf "
                     "scale=1920:-2 OUT.mp4) or raise the service's MAX_PIXELS")


def _image_problems(path: Path, label: str) -> None:
    """Raises :class:`_Unfit` unless the file at ``path`` is an image we decode."""
    try:
        decode_image(path.read_bytes(), int(current_app.config["MAX_PIXELS"]))
    except ImageError as exc:
        raise _Unfit(f"is not an image we can read ({exc.message})", exc.message,
                     error=ImageError) from None


def _check_video(path: Path, label: str, fix: str = VIDEO_FIX) -> None:
    """A video the workers can convert (see :func:`_video_problems`); ``label`` names the
    upload in the message (never the server's path).

    Raises:
        VideoError (400, ``invalid_video``): what is wrong and how to fix it.
    """
    try:
        _video_problems(path, label)
    except _Unfit as unfit:
        unfit.raise_for(label, fix)


def _check_background(path: Path, kind: str, label: str) -> str:
    """Check an uploaded background by its content, whatever its name: photos take an
    image; a video job an image, or a video (looped under it). A still image is taken as an
    image (decoded as photos are: EXIF orientation, colour profile), an animated one (GIF,
    APNG) as a video when FFmpeg reads it. Returns the suffix its file must have, as the
    workers tell a still from a video by the suffix (:data:`IMAGE_SUFFIXES`): the upload's
    own when it agrees with the content, else ``.png`` (an image is decoded by its content
    whatever the suffix) or ``.video``.

    Raises:
        ImageError, VideoError (400): neither, saying why (the code is ``invalid_image``
            when the name says image, else ``invalid_video``).
    """
    suffix = path.suffix.lower()
    if kind == "photos":
        try:
            _image_problems(path, label)
        except _Unfit as unfit:
            unfit.raise_for(label, "send an image (JPEG, PNG, WebP...) as the background "
                            "file, or a colour or blur as text (-F background=#1e90ff)")
        return suffix
    as_image = suffix if suffix in IMAGE_SUFFIXES else ".png"
    as_video = suffix if suffix not in IMAGE_SUFFIXES else ".video"
    try:
        _image_problems(path, label)
        not_image = None
    except _Unfit as unfit:
        not_image = unfit
    if not_image is None and not _animated(path):
        return as_image
    try:
        _video_problems(path, label)
    except _Unfit as not_video:
        if not_image is None:
            return as_image  # an animation FFmpeg cannot read: its first picture, still
        error = ImageError if suffix in IMAGE_SUFFIXES else VideoError
        raise error(f"the {label} is neither an image nor a video we can read (as an image: "
                    f"{not_image.reason}; as a video: {not_video.reason}); "
                    f"{BACKGROUND_FIX}") from None
    return as_video


def _animated(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return bool(getattr(image, "is_animated", False))
    except Exception:  # noqa: BLE001 - not an image Pillow opens (an .npy): a still
        return False


def _ffmpeg_reason(exc) -> str:
    """FFmpeg's reason without its error number or the file's path."""
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return reason[:1].lower() + reason[1:]


ZIP_FIX = ("send one zip of photos, e.g. zip -r photos.zip FOLDER, then "
           "curl -F photos=@photos.zip")
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def _check_photos(path: Path, label: str) -> int:
    """A real zip (its directory reads, whatever the upload's name) with photos in it that
    we can unpack (no password, a compression method Python reads), not unpacking to more
    than the limit allows. Returns the number of photos.

    Raises:
        UserError (400, ``invalid_zip``).
    """
    from jobs.work import PHOTO_SUFFIXES, photo_names

    try:
        with zipfile.ZipFile(path) as archive:
            infos = {i.filename: i for i in archive.infolist()}
    except (zipfile.BadZipFile, OSError) as exc:
        log.info("%s (%s): not a zip: %s", label, path, exc)
        reason = _scrub(str(exc), path, label)
        reason = "" if reason.lower() == "file is not a zip file" else f" ({reason})"
        raise UserError(f"the {label} is not a zip file{reason}; {ZIP_FIX}",
                        code="invalid_zip") from None
    try:
        names = photo_names(path)
    except UserError:
        raise UserError(f"the {label} has no photos in it (looked for files ending in "
                        f"{', '.join(sorted(PHOTO_SUFFIXES))}; folders are fine); {ZIP_FIX}",
                        code="invalid_zip") from None
    locked = [n for n in names if infos[n].flag_bits & 0x1]
    if locked:
        raise UserError(f"the {label} is password-protected ({locked[0]!r}"
                        f"{f' and {len(locked) - 1} more' if len(locked) > 1 else ''}); "
                        f"zip the photos without a password and {ZIP_FIX}", code="invalid_zip")
    odd = [n for n in names if infos[n].compress_type not in ZIP_METHODS]
    if odd:
        raise UserError(f"the {label} is compressed with a method we cannot unpack (method "
                        f"{infos[odd[0]].compress_type}, {odd[0]!r}); zip the photos again "
                        f"with the usual deflate: {ZIP_FIX}", code="invalid_zip")
    unpacked = sum(infos[n].file_size for n in names)
    limit = MAX_UNPACKED_RATIO * int(current_app.config["MAX_UPLOAD_MB"]) * 1024 * 1024
    if unpacked > limit:
        raise UserError(f"the photos in the {label} unpack to {unpacked / 2**20:.0f} MB, more "
                        f"than {limit / 2**20:.0f} MB ({MAX_UNPACKED_RATIO} x MAX_UPLOAD_MB); "
                        "send them in several zips", code="invalid_zip")
    return len(names)


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
        # Every upload is checked by its content, at the path the workers will open.
        upload.save(folder / input_name)
        _check_not_empty(folder / input_name, field, upload.filename)
        if kind == "video":
            _check_video(folder / input_name, _label(field, upload.filename))
        else:
            _check_photos(folder / input_name, _label(field, upload.filename))
        if background is not None:
            background.save(folder / background_name)
            _check_not_empty(folder / background_name, "background", background.filename)
            checked = "background" + _check_background(
                folder / background_name, kind, _label("background", background.filename))
            if checked != background_name:
                (folder / background_name).rename(folder / checked)
                background_name = job_params.background_file = checked
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
