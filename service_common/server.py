"""The production server behind ``python -m <service>`` and the console scripts: gunicorn.

- Workers sized to the machine: ``--workers auto`` is one per core. Admission is shared by
  all of them (:mod:`service_common.admission`): one computing request per worker, and a
  queue of ``--queue`` more. Each is a ``gthread`` worker with threads enough for every
  admitted request plus two spare ones that always answer quickly (``/health``,
  ``/metrics``, the immediate 503s).
- Thread pools sized per worker (:func:`core.runtime.limit_threads` after the fork: BLAS,
  OpenMP, numba, torch, OpenCV): ``--compute-threads auto`` gives each worker its share of
  the cores, so W workers never run W x cores threads on the CPU at once.
- Prometheus metrics of all workers together (``prometheus_client``'s multiprocess mode: a
  directory shared by the workers, cleaned when the server starts and when a worker dies).
- Access log lines carry the request id.

Models load in each worker after the fork (no preload): MediaPipe's and torch's threads do
not survive a fork.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile

from gunicorn.app.base import BaseApplication

from service_common.admission import SHARED_ADMISSION, Admission

log = logging.getLogger(__name__)

ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s'
SPARE_THREADS = 2


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(value) -> int:
    return cpu_count() if str(value).lower() == "auto" else max(1, int(value))


def resolve_compute_threads(value, workers: int) -> int:
    return max(1, cpu_count() // workers) if str(value).lower() == "auto" else max(1, int(value))


class ServiceApplication(BaseApplication):
    """gunicorn running ``factory(config)`` in each worker."""

    def __init__(self, factory, config: dict, options: dict):
        self.factory, self.config, self.options = factory, config, options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.factory(self.config)


def _post_fork(threads: int):
    def hook(server, worker):
        from core.runtime import limit_malloc_arenas, limit_threads

        limit_threads(threads)
        limit_malloc_arenas()
    return hook


def _child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def create_app_name(factory) -> str:
    return f"{factory.__module__}"


def serve(factory, config: dict) -> None:
    """Run ``factory`` (a service's ``create_app``) under gunicorn with ``config``'s
    ``HOST``, ``PORT``, ``WORKERS``, ``COMPUTE_THREADS``, ``QUEUE`` and ``REQUEST_DEADLINE``."""
    workers = resolve_workers(config["WORKERS"])
    threads = resolve_compute_threads(config["COMPUTE_THREADS"], workers)
    config = {**config, "WORKERS": workers, "COMPUTE_THREADS": threads}
    # Each worker's libraries start their pools at this size (numba and OpenBLAS read the
    # environment when first imported, which happens in the worker after the fork).
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):
        os.environ[name] = str(threads)
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    owned = None
    if not metrics_dir:
        owned = metrics_dir = tempfile.mkdtemp(prefix="people-matting-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    else:
        for entry in os.scandir(metrics_dir):  # stale files of an earlier run
            if entry.name.endswith(".db"):
                os.unlink(entry.path)
    options = {
        "bind": f"{config['HOST']}:{config['PORT']}",
        "workers": workers,
        "worker_class": "gthread",
        # Every admitted request may land in one worker: slots + queue, and spare threads
        # that answer /health, /metrics and the immediate 503s.
        "threads": workers + int(config["QUEUE"]) + SPARE_THREADS,
        # gunicorn kills a worker silent this long; a request's own deadline is shorter.
        "timeout": max(int(float(config["REQUEST_DEADLINE"]) * 2), 60),
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "loglevel": str(config.get("LOG_LEVEL", "info")).lower(),
        "post_fork": _post_fork(threads),
        "child_exit": _child_exit,
        "proc_name": create_app_name(factory),
        # gunicorn's control socket lives at one path per user: several servers on one
        # machine (both services, tests) would take it from each other.
        "control_socket_disable": True,
    }
    # One admission for the whole service, in shared memory, made before the fork: a slot
    # per worker, and a queue of QUEUE requests whichever worker took them.
    SHARED_ADMISSION[factory.__module__] = Admission(
        slots=workers, queue=int(config["QUEUE"]), deadline=float(config["REQUEST_DEADLINE"]),
        shared=True)
    log.info("serving on %s with %d gunicorn workers (%d compute threads each), %d requests "
             "computing and %d waiting at most", options["bind"], workers, threads, workers,
             int(config["QUEUE"]))
    try:
        ServiceApplication(factory, config, options).run()
    finally:
        if owned:
            shutil.rmtree(owned, ignore_errors=True)
