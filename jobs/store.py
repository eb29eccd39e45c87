"""Where jobs live: their state in Redis (:class:`JobStore`), their files in the shared
folder (``JOBS_DIR/<job id>/``). Nothing about a job is kept in a process's memory, so a
restarted service, or a worker on another machine, knows every job.

Redis keys (``pm:`` prefix):

- ``pm:job:<id>``: the record, a hash (:data:`RECORD_FIELDS`);
- ``pm:job:<id>:progress``: frames (photos) written by each chunk, chunk -> count (a chunk
  started again overwrites its count, so retries never count twice);
- ``pm:job:<id>:done``: the chunks finished (a set: finishing twice counts once);
- ``pm:job:<id>:attempts``: how often each task was started (workers dying under it);
- ``pm:job:<id>:workers``: which worker did each chunk;
- ``pm:job:<id>:seconds``: how long each chunk's work took;
- ``pm:jobs``: every job id, scored by creation time (for the sweep);
- ``pm:worker:<name>``: a worker's heartbeat (expires when it stops beating).

A job's folder holds the upload (``input.<ext>``), an uploaded background, the plan
(``plan.json``), the chunks (``chunks/``) and finally the result (``result.<ext>``); the
upload and the chunks are removed when the result is complete.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from core.errors import UserError
from service_common.errors import ServiceUnavailable

log = logging.getLogger(__name__)

QUEUED, RUNNING, JOINING, DONE, FAILED, CANCELLED = (
    "queued", "running", "joining", "done", "failed", "cancelled")
ACTIVE = (QUEUED, RUNNING, JOINING)
FINISHED = (DONE, FAILED, CANCELLED)
STATES = ACTIVE + FINISHED
RECORD_FIELDS = ("id", "kind", "state", "created", "started", "finished", "expires", "error",
                 "frames_total", "chunks", "params", "upload_name", "input", "result",
                 "download_name", "media_type", "failed_items", "join_seconds")
PREFIX = "pm:"
QUEUE_NAME = "people-matting-jobs"
HEARTBEAT_SECONDS = 10.0

# Set state to ARGV[1] (and the field/value pairs after the from-states) only if the
# current state is one of ARGV[3 .. 2 + ARGV[2]]; returns 1 if it did. Atomic, so a cancel
# and a worker finishing cannot both win.
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local n = tonumber(ARGV[2])
local allowed = false
for i = 3, 2 + n do
  if ARGV[i] == state then allowed = true end
end
if not allowed then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
for i = 3 + n, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
"""


class JobNotFound(UserError):
    """No job with this id (never made, or removed after JOBS_KEEP_HOURS)."""

    status = 404
    code = "job_not_found"


class QueueUnavailable(ServiceUnavailable):
    """Redis (the queue's broker and the jobs' store) cannot be reached: a 503 that says
    how to start one. Every jobs endpoint answers it, whatever the job id: without the
    store nobody can tell whether a job exists.

    The message shows the URL without its password and the reason without error numbers;
    ``why`` as given goes to the log."""

    def __init__(self, url: str, why: str):
        log.info("job store (Redis at %s) unreachable: %s", redacted_url(url), why)
        super().__init__(
            f"the job queue and store (Redis at {redacted_url(url)}) is not reachable "
            f"({_reason(why)}), so jobs cannot be queued, looked up or cancelled. Start Redis "
            "and a worker with 'bash scripts/worker.sh' (Debian: apt-get install "
            "redis-server), or point JOBS_REDIS_URL at yours", "queue_unavailable",
            retry_after=30)


def redacted_url(url: str) -> str:
    """``url`` without its password (``redis://:SECRET@host`` -> ``redis://:***@host``)."""
    return re.sub(r"^([a-z0-9+.-]+://[^:/@]*:)[^@/]*@", r"\1***@", url, flags=re.IGNORECASE)


def _reason(why: str) -> str:
    """redis-py's or kombu's text, shortened for a user: ``Error 111 connecting to
    127.0.0.1:6379. Connection refused.`` -> ``connection refused`` (the address is in the
    message already)."""
    text = (why or "").split("\n")[0].strip()
    text = re.sub(r"^(\[Errno -?\d+\]|Error -?\d+)\s*", "", text)
    text = re.sub(r"^connecting to \S+?\.\s+", "", text).rstrip(".").strip()
    return (text[:1].lower() + text[1:]) if text else "no answer"


def new_job_id() -> str:
    return uuid.uuid4().hex


def default_folder() -> Path:
    return Path(tempfile.gettempdir()) / "people-matting-jobs"


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


class JobStore:
    """Job records in Redis and job folders on the shared disk.

    Args:
        redis_url: ``redis://HOST:PORT/DB`` (``JOBS_REDIS_URL``).
        folder: the shared folder (``JOBS_DIR``; empty: :func:`default_folder`).
        keep_hours: how long a finished job is kept (``JOBS_KEEP_HOURS``).
        timeout: seconds to wait for Redis before :class:`QueueUnavailable`.
    """

    def __init__(self, redis_url: str, folder: str | Path | None = None, keep_hours: float = 24.0,
                 timeout: float = 5.0):
        import redis

        self.url = redis_url
        self.folder = Path(folder) if folder else default_folder()
        self.keep_seconds = float(keep_hours) * 3600.0
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True,
                                          socket_connect_timeout=min(timeout, 2.0),
                                          socket_timeout=timeout, health_check_interval=30)
        # For /health: it must answer quickly whatever happened to Redis.
        self.quick = redis.Redis.from_url(redis_url, decode_responses=True,
                                          socket_connect_timeout=0.5, socket_timeout=0.5)
        self._transition = self.redis.register_script(_TRANSITION)

    @classmethod
    def from_config(cls, config: dict) -> "JobStore":
        return cls(config["JOBS_REDIS_URL"], config.get("JOBS_DIR") or None,
                   config["JOBS_KEEP_HOURS"])

    # -- plumbing
    def _call(self, fn, *args, **kwargs):
        """``fn(*args)`` on Redis; an unreachable Redis becomes :class:`QueueUnavailable`."""
        import redis

        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise QueueUnavailable(self.url, str(exc).split("\n")[0] or type(exc).__name__) from None

    @staticmethod
    def key(job_id: str, part: str = "") -> str:
        return f"{PREFIX}job:{job_id}" + (f":{part}" if part else "")

    def ping(self) -> None:
        """Raises :class:`QueueUnavailable` unless Redis answers."""
        self._call(self.redis.ping)

    def folder_of(self, job_id: str) -> Path:
        return self.folder / job_id

    # -- records
    def create(self, job_id: str, kind: str, params: dict, upload_name: str, input_name: str,
               **fields) -> dict:
        """Record a new job, ``queued`` (one write: a job exists whole or not at all)."""
        record = {"id": job_id, "kind": kind, "state": QUEUED, "created": repr(time.time()),
                  "params": json.dumps(params), "upload_name": upload_name, "input": input_name,
                  **{k: _text(v) for k, v in fields.items()}}
        pipe = self.redis.pipeline()
        pipe.hset(self.key(job_id), mapping=record)
        pipe.zadd(PREFIX + "jobs", {job_id: time.time()})
        self._call(pipe.execute)
        return record

    def get(self, job_id: str) -> dict | None:
        record = self._call(self.redis.hgetall, self.key(job_id))
        return record or None

    def require(self, job_id: str) -> dict:
        """The record of ``job_id``.

        Raises:
            QueueUnavailable: Redis does not answer (asked whatever the id looks like: a
                404 is only said by a store that answers).
            JobNotFound: no such job.
        """
        if not _looks_like_id(job_id):
            self.ping()
            raise JobNotFound(f"no job {job_id!r}: job ids are the 32 hex digits POST /jobs "
                              "answered with (its \"id\", and the end of its Location header)")
        record = self.get(job_id)
        if record is None:
            raise JobNotFound(f"no job {job_id!r}: never made, or removed after "
                              f"{self.keep_seconds / 3600:g} hours (JOBS_KEEP_HOURS)")
        return record

    def state(self, job_id: str) -> str | None:
        return self._call(self.redis.hget, self.key(job_id), "state")

    def update(self, job_id: str, **fields) -> None:
        self._call(self.redis.hset, self.key(job_id), mapping={k: _text(v) for k, v in fields.items()})

    def transition(self, job_id: str, from_states, to: str, **fields) -> bool:
        """Set the state to ``to`` (and ``fields``) if it is one of ``from_states``;
        ``True`` if it was. Finishing states also set ``finished`` and ``expires``."""
        if to in FINISHED:
            now = time.time()
            fields.setdefault("finished", now)
            fields.setdefault("expires", now + self.keep_seconds)
        args = [to, len(from_states), *from_states]
        for name, value in fields.items():
            args += [name, _text(value)]
        return bool(self._call(self._transition, keys=[self.key(job_id)], args=args))

    def fail(self, job_id: str, message: str) -> bool:
        """Mark an active job failed with ``message`` (``False`` if it had finished)."""
        return self.transition(job_id, ACTIVE, FAILED, error=message)

    # -- progress
    def progress(self, job_id: str, chunk: int, frames: int) -> str | None:
        """Record that ``chunk`` has written ``frames``; returns the job's state (a worker
        stops when it is no longer active)."""
        pipe = self.redis.pipeline()
        pipe.hset(self.key(job_id, "progress"), str(chunk), int(frames))
        pipe.hget(self.key(job_id), "state")
        return self._call(pipe.execute)[1]

    def chunk_started(self, job_id: str, chunk: int, worker: str) -> int:
        """Count a start of ``chunk`` by ``worker``; returns how many starts it has had."""
        pipe = self.redis.pipeline()
        pipe.hincrby(self.key(job_id, "attempts"), str(chunk), 1)
        pipe.hset(self.key(job_id, "workers"), str(chunk), worker)
        pipe.hset(self.key(job_id, "progress"), str(chunk), 0)
        return int(self._call(pipe.execute)[0])

    def chunk_finished(self, job_id: str, chunk: int, frames: int,
                       seconds: float | None = None) -> int:
        """Mark ``chunk`` done (idempotent), with the ``seconds`` its work took; returns the
        number of chunks done."""
        pipe = self.redis.pipeline()
        pipe.hset(self.key(job_id, "progress"), str(chunk), int(frames))
        if seconds is not None:
            pipe.hset(self.key(job_id, "seconds"), str(chunk), repr(float(seconds)))
        pipe.sadd(self.key(job_id, "done"), str(chunk))
        pipe.scard(self.key(job_id, "done"))
        return int(self._call(pipe.execute)[-1])

    def chunk_seconds(self, job_id: str) -> dict[int, float]:
        """Seconds each finished chunk's work took (benchmarks: where the time went)."""
        return {int(k): float(v) for k, v in
                self._call(self.redis.hgetall, self.key(job_id, "seconds")).items()}

    def frames_done(self, job_id: str) -> int:
        values = self._call(self.redis.hvals, self.key(job_id, "progress"))
        return sum(int(v) for v in values)

    def public(self, record: dict) -> dict:
        """What ``GET /jobs/<id>`` shows: state, frames done and total, frames per second,
        seconds left, error, times (ISO 8601, UTC), chunks and the workers that did them."""
        job_id = record["id"]
        pipe = self.redis.pipeline()
        pipe.hvals(self.key(job_id, "progress"))
        pipe.scard(self.key(job_id, "done"))
        pipe.hvals(self.key(job_id, "workers"))
        progress, chunks_done, workers = self._call(pipe.execute)
        total = int(record["frames_total"]) if record.get("frames_total") else None
        done = sum(int(v) for v in progress)
        state = record["state"]
        if total is not None:
            done = min(done, total)
            if state == DONE:
                done = total
        started = _float(record.get("started"))
        finished = _float(record.get("finished"))
        fps = None
        if started is not None and done:
            elapsed = (finished or time.time()) - started
            fps = round(done / elapsed, 2) if elapsed > 0 else None
        left = None
        if state in ACTIVE and fps and total is not None:
            left = round((total - done) / fps, 1)
        elif state == DONE:
            left = 0.0
        params = json.loads(record.get("params") or "{}")
        out = {
            "id": job_id, "kind": record.get("kind"), "state": state,
            "frames_done": done, "frames_total": total, "frames_per_second": fps,
            "seconds_left": left, "error": record.get("error") or None,
            "created": iso(_float(record.get("created"))), "started": iso(started),
            "finished": iso(finished), "expires": iso(_float(record.get("expires"))),
            "chunks": {"total": int(record["chunks"]) if record.get("chunks") else None,
                       "done": int(chunks_done)},
            "workers": sorted(set(workers)),
            "output": {"type": params.get("output"), "format": params.get("format"),
                       "filename": record.get("download_name"),
                       "media_type": record.get("media_type")},
            "result": f"/jobs/{job_id}/result" if state == DONE else None,
        }
        if record.get("failed_items"):
            out["failed_items"] = json.loads(record["failed_items"])
        return out

    # -- removal
    def delete(self, job_id: str) -> None:
        """Remove a job's record and folder."""
        keys = [self.key(job_id, part)
                for part in ("", "progress", "done", "attempts", "workers", "seconds")]
        pipe = self.redis.pipeline()
        pipe.delete(*keys)
        pipe.zrem(PREFIX + "jobs", job_id)
        self._call(pipe.execute)
        shutil.rmtree(self.folder_of(job_id), ignore_errors=True)

    def sweep(self, force: bool = False) -> int:
        """Remove finished jobs past their ``expires`` time, records with their folders, and
        folders no record owns that are older than the keep time. Runs at most once a
        minute across all processes (a Redis lock) unless ``force``. Returns jobs removed."""
        if not force and not self._call(self.redis.set, PREFIX + "sweep", "1", nx=True, ex=60):
            return 0
        now, removed = time.time(), 0
        known = set()
        for job_id in self._call(self.redis.zrange, PREFIX + "jobs", 0, -1):
            record = self.get(job_id)
            expires = _float(record.get("expires")) if record else None
            if record is None or (record.get("state") in FINISHED and expires is not None
                                  and expires <= now):
                self.delete(job_id)
                removed += 1
            else:
                known.add(job_id)
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if path.name in known or not _looks_like_id(path.name):
                    continue
                try:
                    old = now - path.stat().st_mtime > self.keep_seconds
                except OSError:
                    continue
                if old:
                    shutil.rmtree(path, ignore_errors=True)
                    removed += 1
        if removed:
            log.info("removed %d expired job(s)", removed)
        return removed

    # -- the queue and the workers
    def heartbeat(self, name: str, info: dict) -> None:
        self._call(self.redis.set, f"{PREFIX}worker:{name}", json.dumps(info),
                   ex=int(3 * HEARTBEAT_SECONDS))

    def stopped(self, name: str) -> None:
        self._call(self.redis.delete, f"{PREFIX}worker:{name}")

    def queue_facts(self) -> dict:
        """Workers alive (their heartbeats) and tasks waiting in the queue."""
        pipe = self.quick.pipeline()
        pipe.keys(PREFIX + "worker:*")
        pipe.llen(QUEUE_NAME)
        keys, waiting = self._call(pipe.execute)
        names = [k.split(":", 2)[2] for k in keys]
        return {"workers": sorted(names), "tasks_waiting": int(waiting)}


def _looks_like_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _text(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def _float(text) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None
