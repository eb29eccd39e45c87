"""The Celery tasks: thin wrappers of :mod:`jobs.work`'s steps, and the worker process's
set-up (thread pools sized, the default models loaded once per process, a heartbeat).

Tasks: ``jobs.plan(job_id)``, ``jobs.chunk(job_id, index)``, ``jobs.photos(job_id, index)``,
``jobs.join(job_id)``. A step that fails records the failure on the job (its state and
message) and the task ends normally: the job's state is where failures are reported, and
retrying a deterministic failure would only fail again. A worker dying under a task is
different: the task goes back to the queue (see :mod:`jobs.queue`).
"""
from __future__ import annotations

import logging
import threading
import time

from celery import signals
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from jobs import work
from jobs.store import ACTIVE, HEARTBEAT_SECONDS, JobStore, QueueUnavailable
from jobs.worker import CONFIG, app

log = logging.getLogger(__name__)

_store: JobStore | None = None


def store() -> JobStore:
    """This process's store (made after the fork: connections are not shared)."""
    global _store
    if _store is None:
        _store = JobStore.from_config(CONFIG)
    return _store


def _enqueue(name: str, args: list) -> None:
    app.send_task(name, args=args)


def _run(task, step, job_id: str, *args):
    ctx = work.Context(CONFIG, store(), _enqueue, worker=task.request.hostname or "worker")
    try:
        return step(ctx, job_id, *args)
    except work.JobCancelled:
        log.info("job %s is no longer active (cancelled or removed); step dropped", job_id)
        return {"cancelled": job_id}
    except (QueueUnavailable, OperationalError) as exc:
        # Redis went away under the step: not the job's fault, and its failure could not be
        # recorded anyway. Back to the queue (or, if Redis cannot take even that, left
        # unacknowledged until the visibility timeout): retried when Redis is back.
        log.warning("job %s: Redis unreachable (%s); the step goes back to the queue", job_id, exc)
        raise Reject(str(exc), requeue=True) from None
    except Exception as exc:  # noqa: BLE001 - reported on the job, see the module's doc
        if ctx.store.state(job_id) not in ACTIVE:  # cancelled under us: its files went
            return {"cancelled": job_id}
        work.fail(ctx, job_id, exc)
        return {"failed": job_id}
    finally:
        try:
            ctx.store.sweep()
        except Exception:  # noqa: BLE001 - tidying up must never fail a job
            log.warning("sweeping expired jobs failed", exc_info=True)


@app.task(name="jobs.plan", bind=True)
def plan(self, job_id: str):
    return _run(self, work.plan, job_id)


@app.task(name="jobs.chunk", bind=True)
def chunk(self, job_id: str, index: int):
    return _run(self, work.run_chunk, job_id, index)


@app.task(name="jobs.photos", bind=True)
def photos(self, job_id: str, index: int):
    return _run(self, work.run_photos, job_id, index)


@app.task(name="jobs.join", bind=True)
def join(self, job_id: str):
    return _run(self, work.join, job_id)


# --------------------------------------------------------------------------- processes


@signals.worker_process_init.connect
def _init_process(**_):
    """A pool process: size its thread pools to its share of the cores, tune malloc for
    frame-sized arrays, and load the default video models now rather than in a job."""
    from core.runtime import limit_threads, reuse_freed_memory
    from service_common.server import cpu_count

    processes = worker_processes(CONFIG)
    threads = CONFIG["COMPUTE_THREADS"]
    limit_threads(max(1, cpu_count() // processes) if str(threads) == "auto" else int(threads))
    reuse_freed_memory()
    try:
        work.pipeline_for(work.JobParams(kind="video", output="composite", format="mp4"))
    except Exception:  # noqa: BLE001 - a job that needs them will report why
        log.warning("could not load the default video models", exc_info=True)


def worker_processes(config: dict) -> int:
    """``JOBS_CONCURRENCY``: ``auto`` is half the cores (a video task keeps about two busy:
    decoding, the pipeline and encoding overlap), at least one."""
    from service_common.server import cpu_count

    value = str(config["CONCURRENCY"]).lower()
    return max(1, cpu_count() // 2) if value == "auto" else max(1, int(value))


_beating = threading.Event()
_names: list[str] = []


@signals.worker_ready.connect
def _start_heartbeat(sender=None, **_):
    """The worker's main process says it is alive every few seconds (``GET /health`` and
    ``GET /jobs/<id>`` show the workers), and expires when it stops."""
    name = getattr(sender, "hostname", None) or "worker"
    _names.append(name)
    facts = {"processes": worker_processes(CONFIG), "started": time.time()}

    def beat():
        while not _beating.wait(HEARTBEAT_SECONDS):
            try:
                store().heartbeat(name, facts)
            except Exception:  # noqa: BLE001 - Redis away for a moment: try again
                log.debug("heartbeat failed", exc_info=True)

    try:
        store().heartbeat(name, facts)
    except Exception:  # noqa: BLE001
        log.warning("cannot reach Redis at %s for the heartbeat", CONFIG["JOBS_REDIS_URL"])
    threading.Thread(target=beat, name="jobs-heartbeat", daemon=True).start()


@signals.worker_shutdown.connect
def _stop_heartbeat(**_):
    _beating.set()
    for name in _names:
        try:
            store().stopped(name)
        except Exception:  # noqa: BLE001 - going away anyway; the key expires
            pass
