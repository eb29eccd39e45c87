"""The queue: a Celery app with Redis as broker and result store (:func:`make_celery`).

The settings that keep a job from being lost:

- ``task_acks_late``: a task is acknowledged when it has finished, not when a worker takes
  it, so a worker that dies mid-task leaves it in the queue;
- ``task_reject_on_worker_lost``: a pool process killed under a task (out of memory, a
  signal) puts the task back at once instead of marking it failed;
- ``visibility_timeout`` (``JOBS_VISIBILITY_TIMEOUT``): with Redis, a task taken by a worker
  that disappeared altogether (the machine went away) goes back to the queue when this
  many seconds have passed since it was taken. It must be longer than the slowest task
  (one chunk), or a slow task would also be given to a second worker (harmless, the steps
  are idempotent, but wasted). Abandoned tasks are looked for every tenth of it;
- ``worker_prefetch_multiplier = 1``: a worker takes one task at a time, so the other
  chunks of a job stay in the queue for the other workers.
"""
from __future__ import annotations

from celery import Celery

from jobs.store import QUEUE_NAME


def make_celery(config: dict, include: tuple[str, ...] = ()) -> Celery:
    """A Celery app for the jobs settings in ``config`` (``JOBS_REDIS_URL``,
    ``JOBS_VISIBILITY_TIMEOUT``, ``JOBS_KEEP_HOURS``); ``include``: task modules to load
    (the worker's; the service only sends tasks, by name)."""
    url = config["JOBS_REDIS_URL"]
    visibility = float(config["JOBS_VISIBILITY_TIMEOUT"])
    app = Celery("people_matting_jobs", broker=url, backend=url, include=list(include))
    transport = {
        "visibility_timeout": visibility,
        # Look for tasks abandoned by dead workers every tenth of the timeout (1-60 s);
        # every look scans Redis (throttle 1), which is one cheap ZRANGE.
        "unacked_restore_interval": max(1, min(60, int(visibility / 10))),
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
    }
    app.conf.update(
        task_default_queue=QUEUE_NAME,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=int(float(config["JOBS_KEEP_HOURS"]) * 3600) or None,
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": visibility},
        broker_connection_retry_on_startup=True,
        # A service answering POST /jobs must not hang on a dead broker: one try, then 503.
        task_publish_retry=False,
        broker_connection_timeout=5,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app
