"""The Celery app workers run: ``python -m jobs worker`` (or ``celery -A jobs.worker worker``).

Its configuration is read from the environment when this module is imported (the
``JOBS_*`` settings, see :data:`service_common.settings.WORKER_SETTINGS`); ``python -m jobs
worker --flag ...`` puts its flags there first.
"""
from __future__ import annotations

from jobs.queue import make_celery
from service_common.config import load_config
from service_common.settings import WORKER_SETTINGS

CONFIG = load_config(WORKER_SETTINGS)
app = make_celery(CONFIG, include=("jobs.tasks",))
# Each pool process loads the default models before taking a task (jobs.tasks); that can
# take longer than Celery's 4 s default on a busy machine.
app.conf.worker_proc_alive_timeout = 120
# A worker queues the next steps itself (chunks, the join): unlike the service, which answers
# 503 at once, it waits out a short Redis hiccup rather than leave a job half-queued.
app.conf.task_publish_retry = True
app.conf.task_publish_retry_policy = {"max_retries": 20, "interval_start": 0.2,
                                      "interval_step": 0.5, "interval_max": 3}
