"""The work of a job, step by step, without the queue (the Celery tasks in
:mod:`jobs.tasks` call these; so could a test or a script).

A video job: :func:`plan` (the frames' timestamps, the chunks; one task per chunk queued)
-> :func:`run_chunk` for each chunk, on any worker, several at once -> :func:`join` (queued
by whichever chunk finishes last): the chunks remuxed into one file, the source's audio
copied over it. A photo job: :func:`plan` (batches of photos) -> :func:`run_photos` per
batch -> :func:`join` (one zip).

Every step may run twice (a worker dies after doing it, before the queue hears it is done;
the queue gives it to another): each writes its files under a name of its own and renames
them into place, and skips work whose file is already there, so running twice is only
wasted time. A step's failure fails the job with a message (:class:`JobFailed` for the
caller's mistakes, e.g. a file FFmpeg cannot decode past its first frame); a worker dying
is not a failure, until the same step has been started ``JOBS_MAX_ATTEMPTS`` times.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePosixPath

from core.errors import UserError
from core.images import IMAGE_FORMATS, decode_image, encode_image
from core.pipeline import Pipeline, render
from core.video.chunks import (
    Chunk,
    ChunkResult,
    Timestamps,
    convert_chunk,
    frame_timestamps,
    join_chunks,
    split,
)
from core.video.convert import VideoOptions
from jobs.params import JobParams
from jobs.store import ACTIVE, DONE, JOINING, QUEUED, RUNNING, JobStore

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = {"." + f for f in IMAGE_FORMATS if f != "npy"} | {".tif", ".tiff", ".bmp"}
PROGRESS_EVERY = 0.5   # seconds between progress reports (and cancellation checks)


class JobCancelled(Exception):
    """The job was cancelled (or removed) while a step ran: stop quietly."""


@dataclass
class Context:
    """What the steps need: settings, the store, how to queue the next step, who we are."""

    config: dict
    store: JobStore
    enqueue: Callable[[str, list], None]   # (task name, args)
    worker: str = "local"


# --------------------------------------------------------------------------- models


@functools.lru_cache(maxsize=8)
def _pipeline(kind: str, segmenter: str | None, mode: str | None, matter: str | None) -> Pipeline:
    """One pipeline per kind and backend choice, per process: models load once and serve
    every job after (a :class:`~core.pipeline.Pipeline` keeps no per-video state)."""
    started = time.perf_counter()
    if kind == "video":
        from core.video.convert import video_pipeline

        kwargs = {k: v for k, v in (("segmenter", segmenter), ("segmenter_mode", mode),
                                    ("matter", matter)) if v is not None}
        pipeline = video_pipeline(**kwargs)
    else:
        pipeline = Pipeline.in_process(
            segmenter or "auto", matter or "auto",
            segmenter_options={"mediapipe": {"mode": mode}} if mode else None)
    log.info("%s pipeline loaded in %.1f s: %s", kind, time.perf_counter() - started,
             pipeline.describe())
    return pipeline


class _WithRunOptions:
    """A pipeline whose every call that finds people (``run``, ``segment``) gets the job's
    per-call options (``max_people``, ``people``, trimap fields), over what the video
    loop passes. Everything else is the pipeline's own."""

    def __init__(self, pipeline: Pipeline, options: dict):
        self.pipeline, self.options = pipeline, options

    def __getattr__(self, name):
        return getattr(self.pipeline, name)

    def run(self, image, **kwargs):
        return self.pipeline.run(image, **{**kwargs, **self.options})

    def segment(self, image, **kwargs):
        return self.pipeline.segment(image, **{**kwargs, **self.options})


def pipeline_for(params: JobParams):
    pipeline = _pipeline(params.kind, params.segmenter, params.segmenter_mode, params.matter)
    return _WithRunOptions(pipeline, params.run_options) if params.run_options else pipeline


# --------------------------------------------------------------------------- helpers


def _params(record: dict) -> JobParams:
    return JobParams.from_dict(json.loads(record["params"]))


def _folder(ctx: Context, job_id: str) -> Path:
    """The job's folder, which this worker must see (a worker on another machine with a
    JOBS_DIR that is not the shared folder would otherwise fail on a missing file)."""
    folder = ctx.store.folder_of(job_id)
    if not folder.is_dir():
        raise RuntimeError(f"worker {ctx.worker} cannot see the job's folder {folder}: JOBS_DIR "
                           "must be one folder shared by the service and every worker (NFS, "
                           "SMB...), at the same path on each machine")
    return folder


def _replace_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; if another run of the same step got there first, keep
    theirs (same content) and drop ours."""
    try:
        os.replace(tmp, final)
    except OSError:
        if final.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        else:
            raise


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _background(folder: Path, params: JobParams):
    return str(folder / params.background_file) if params.background_file else params.background


def _check_attempts(ctx: Context, job_id: str, chunk: int) -> None:
    attempts = ctx.store.chunk_started(job_id, chunk, ctx.worker)
    limit = int(ctx.config["JOBS_MAX_ATTEMPTS"])
    if attempts > limit:
        raise RuntimeError(f"part {chunk} of the job was started {attempts} times and its "
                           f"worker stopped each time (out of memory, or killed); giving up "
                           f"after JOBS_MAX_ATTEMPTS={limit}")


class _Progress:
    """Reports a chunk's frames every :data:`PROGRESS_EVERY` seconds; raises
    :class:`JobCancelled` when the job is no longer active."""

    def __init__(self, ctx: Context, job_id: str, chunk: int):
        self.ctx, self.job_id, self.chunk = ctx, job_id, chunk
        self.last = time.monotonic()

    def __call__(self, frames: int) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY:
            return
        self.last = now
        if self.ctx.store.progress(self.job_id, self.chunk, frames) not in ACTIVE:
            raise JobCancelled(self.job_id)


# --------------------------------------------------------------------------- plan


def plan(ctx: Context, job_id: str) -> dict:
    """Cut the job into chunks (video: frame ranges, photos: batches), write
    ``plan.json``, mark the job running and queue a task per chunk.

    Returns ``{"chunks": n, "frames": total}``.
    """
    store = ctx.store
    record, params, folder = _active(ctx, job_id)
    source = folder / record["input"]
    if params.kind == "video":
        stamps = frame_timestamps(source)
        total = len(stamps) if params.max_frames is None else min(len(stamps), params.max_frames)
        if total == 0:
            raise UserError("the video has no frames")
        chunks = split(total, int(ctx.config["JOBS_CHUNK_FRAMES"]),
                       int(ctx.config["JOBS_OVERLAP_FRAMES"]))
        plan_data = {"timestamps": list(stamps.pts), "time_base": str(stamps.time_base),
                     "start_pts": stamps.start_pts,
                     "chunks": [[c.start, c.stop, c.warmup] for c in chunks]}
        task = "jobs.chunk"
    else:
        names = photo_names(source)
        total = len(names)
        size = max(1, int(ctx.config["JOBS_CHUNK_PHOTOS"]))
        batches = [[a, min(a + size, total)] for a in range(0, total, size)]
        plan_data = {"photos": names, "outputs": output_names(names, params), "chunks": batches}
        chunks = batches
        task = "jobs.photos"
    _write_json(folder / "plan.json", plan_data)
    store.transition(job_id, (QUEUED, RUNNING), RUNNING, started=time.time(),
                     frames_total=total, chunks=len(chunks))
    if store.state(job_id) != RUNNING:
        raise JobCancelled(job_id)
    for index in range(len(chunks)):
        ctx.enqueue(task, [job_id, index])
    log.info("job %s: %d %s in %d chunk(s)", job_id, total,
             "frames" if params.kind == "video" else "photos", len(chunks))
    return {"chunks": len(chunks), "frames": total}


def _load_plan(folder: Path) -> dict:
    return json.loads((folder / "plan.json").read_text())


def _chunk_done(ctx: Context, job_id: str, index: int, frames: int, count: int,
                seconds: float | None = None) -> None:
    if ctx.store.chunk_finished(job_id, index, frames, seconds) >= count:
        ctx.enqueue("jobs.join", [job_id])


# --------------------------------------------------------------------------- video chunks


def chunk_path(folder: Path, index: int, params: JobParams) -> Path:
    suffix = "" if params.output == "png" else "." + params.format
    return folder / "chunks" / f"{index:05d}{suffix}"


def _active(ctx: Context, job_id: str) -> tuple[dict, JobParams, Path]:
    """The job's record, parameters and folder, if it is still to be done.

    Raises:
        JobCancelled: it was cancelled (or finished) meanwhile.
    """
    record = ctx.store.require(job_id)
    if record["state"] not in ACTIVE:
        raise JobCancelled(job_id)
    return record, _params(record), _folder(ctx, job_id)


def run_chunk(ctx: Context, job_id: str, index: int) -> dict:
    """Convert one chunk of a video job into ``chunks/<index>.<ext>`` (+ ``.json``, its
    :class:`~core.video.chunks.ChunkResult`); queue the join when it is the last one done."""
    record, params, folder = _active(ctx, job_id)
    data = _load_plan(folder)
    start, stop, warmup = data["chunks"][index]
    chunk = Chunk(index, start, stop, warmup)
    final = chunk_path(folder, index, params)
    done_file = final.with_name(final.name + ".json")
    if done_file.exists():  # a previous run finished it; only the bookkeeping was lost
        result = ChunkResult.load(done_file)
    else:
        _check_attempts(ctx, job_id, index)
        stamps = Timestamps(tuple(data["timestamps"]), Fraction(data["time_base"]),
                            int(data["start_pts"]))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.stem}.{uuid.uuid4().hex[:8]}{final.suffix}")
        options = VideoOptions(**params.video_options())
        try:
            result = convert_chunk(folder / record["input"], tmp, chunk, stamps,
                                   background=_background(folder, params),
                                   pipeline=pipeline_for(params),
                                   on_frame=_Progress(ctx, job_id, index), options=options)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
            raise
        _replace_into_place(tmp, final)
        result.path = str(final)
        _write_json(done_file, result.__dict__)
    _chunk_done(ctx, job_id, index, result.frames, len(data["chunks"]), result.seconds)
    return {"chunk": index, "frames": result.frames, "seconds": round(result.seconds, 2)}


# --------------------------------------------------------------------------- photos


def photo_names(zip_path: Path) -> list[str]:
    """The photos in a zip (by suffix; folders and macOS resource forks left out), sorted.

    Raises:
        UserError: not a zip, or no photos in it.
    """
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = [i.filename for i in archive.infolist()
                     if not i.is_dir() and PurePosixPath(i.filename).suffix.lower() in PHOTO_SUFFIXES
                     and not i.filename.startswith("__MACOSX/")
                     and not PurePosixPath(i.filename).name.startswith("._")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"photos must be a zip file ({exc})", code="invalid_zip") from None
    if not names:
        raise UserError(f"no photos in the zip (looked for {sorted(PHOTO_SUFFIXES)})",
                        code="invalid_zip")
    return sorted(names)


def output_names(names: list[str], params: JobParams) -> list[str]:
    """Each photo's name in the result zip: its path with the format's suffix; photos that
    would share a name keep their whole name (``a.jpg`` -> ``a.jpg.png``), as the command
    line does."""
    suffix = "." + ("jpg" if params.format == "jpeg" else params.format)
    plain = [str(PurePosixPath(n).with_suffix(suffix)) for n in names]
    counts: dict[str, int] = {}
    for name in plain:
        counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    return [n + suffix if counts[p.casefold()] > 1 else p for n, p in zip(names, plain)]


def run_photos(ctx: Context, job_id: str, index: int) -> dict:
    """Matte one batch of a photo job into ``chunks/<index>/`` (a photo that fails is
    listed with its error in ``<index>.json``, and the others go on)."""
    record, params, folder = _active(ctx, job_id)
    data = _load_plan(folder)
    start, stop = data["chunks"][index]
    final = folder / "chunks" / f"{index:05d}"
    done_file = final.with_name(final.name + ".json")
    if not done_file.exists():
        _check_attempts(ctx, job_id, index)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}")
        tmp.mkdir()
        pipeline = pipeline_for(params)
        background = params.background
        max_pixels = int(ctx.config.get("MAX_PIXELS") or 40_000_000)
        if params.background_file:
            background = decode_image((folder / params.background_file).read_bytes(), max_pixels)
        progress = _Progress(ctx, job_id, index)
        failed = []
        try:
            with zipfile.ZipFile(folder / record["input"]) as archive:
                for i in range(start, stop):
                    name, out_name = data["photos"][i], data["outputs"][i]
                    try:
                        encoded = archive.read(name)
                        result = pipeline.run(decode_image(encoded, max_pixels), encoded=encoded)
                        image = render(result, params.output, background, params.fit,
                                       params.alpha_bits)
                        target = tmp / out_name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(encode_image(image, params.format))
                    except UserError as exc:
                        failed.append({"name": name, "error": exc.message})
                    progress(i - start + 1)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _replace_into_place(tmp, final)
        _write_json(done_file, {"photos": stop - start, "failed": failed})
    _chunk_done(ctx, job_id, index, stop - start, len(data["chunks"]))
    return {"chunk": index, "photos": stop - start}


# --------------------------------------------------------------------------- join


def join(ctx: Context, job_id: str) -> dict:
    """Put the chunks together into ``result.<ext>``, mark the job done and remove the
    upload and the chunks."""
    store = ctx.store
    record = store.require(job_id)
    if record["state"] == DONE:
        return {"result": record.get("result")}
    if not store.transition(job_id, (RUNNING, JOINING), JOINING):
        raise JobCancelled(job_id)
    params = _params(record)
    folder = _folder(ctx, job_id)
    data = _load_plan(folder)
    started = time.perf_counter()
    result_name = "result" + params.suffix
    tmp = folder / f".result.{uuid.uuid4().hex[:8]}{params.suffix}"
    failed: list[dict] = []
    try:
        if params.kind == "video":
            chunks = []
            for index in range(len(data["chunks"])):
                path = chunk_path(folder, index, params)
                chunks.append((str(path), ChunkResult.load(path.with_name(path.name + ".json"))))
            if params.output == "png":
                frames_dir = folder / ".frames"
                shutil.rmtree(frames_dir, ignore_errors=True)
                joined = join_chunks(chunks, frames_dir, source=folder / record["input"],
                                     audio=params.audio)
                _zip_folder(frames_dir, tmp)
                shutil.rmtree(frames_dir, ignore_errors=True)
            else:
                joined = join_chunks(chunks, tmp, source=folder / record["input"],
                                     audio=params.audio)
            facts = {"frames": joined.frames, "audio": joined.audio}
        else:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
                for index in range(len(data["chunks"])):
                    part = folder / "chunks" / f"{index:05d}"
                    failed += json.loads(part.with_name(part.name + ".json").read_text())["failed"]
                    for path in sorted(p for p in part.rglob("*") if p.is_file()):
                        archive.write(path, str(path.relative_to(part)))
                if failed:
                    archive.writestr("errors.json", json.dumps(failed, indent=1))
            facts = {"photos": len(data["photos"]), "failed": len(failed)}
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, folder / result_name)
    fields = {"result": result_name, "join_seconds": round(time.perf_counter() - started, 3)}
    if failed:
        fields["failed_items"] = failed
    if store.transition(job_id, (JOINING,), DONE, **fields):
        # Only the result is kept; the upload and the pieces go.
        shutil.rmtree(folder / "chunks", ignore_errors=True)
        for name in (record["input"], params.background_file, "plan.json"):
            if name:
                (folder / name).unlink(missing_ok=True)
    log.info("job %s done: %s", job_id, facts)
    return facts


def _zip_folder(folder: Path, target: Path) -> None:
    # PNGs are compressed already: stored, not deflated (deflating them gains ~1 %).
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)


def fail(ctx: Context, job_id: str, exc: BaseException) -> None:
    """Record a step's failure on the job (the caller's mistakes by their message, our
    faults by type and message; the traceback goes to the worker's log). The client reads
    it (``GET /jobs/<id>``): paths on the workers' disk and error numbers are taken out of
    it (:func:`public_message`), and the message as raised goes to the log."""
    if isinstance(exc, UserError):
        message = exc.message
    else:
        log.exception("job %s failed", job_id)
        message = f"{type(exc).__name__}: {exc}"
    shown = public_message(ctx.store, job_id, message)
    if ctx.store.fail(job_id, shown):
        log.warning("job %s failed: %s", job_id, message)


def public_message(store: JobStore, job_id: str, message: str) -> str:
    """``message`` as the job's client may read it: the upload and an uploaded background
    named as the client knows them, other files of the job by their place in its folder,
    the jobs folder as JOBS_DIR, and no ``[Errno N]``."""
    record = store.get(job_id) or {}
    folder = store.folder_of(job_id)
    names = {}
    if record.get("input"):
        names[record["input"]] = f"the uploaded {record.get('kind') or 'file'} " \
                                 f"{record.get('upload_name') or record['input']!r}"
    background = json.loads(record.get("params") or "{}").get("background_file")
    if background:
        names[background] = "the uploaded background"
    for name, shown in names.items():
        for form in (repr(str(folder / name)), str(folder / name)):
            message = message.replace(form, shown)
    places = [(str(folder) + os.sep, ""), (str(folder), "the job's folder")]
    if store.folder.is_absolute() and len(store.folder.parts) > 1:  # not a bare word
        places.append((str(store.folder), "JOBS_DIR"))
    for place, shown in places:
        message = message.replace(place, shown)
    return re.sub(r"\[Errno -?\d+\]\s*", "", message)
