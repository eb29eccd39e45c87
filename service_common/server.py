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
  directory shared by the workers, cleaned when the server starts and when a worker dies;
  one the server made itself is removed by the server, the process that made it, once
  every worker is gone).
- Access log lines carry the request id.
- The app is built once before gunicorn starts (:func:`check_app`, in a short-lived child
  process), so a configuration mistake (a backend that does not exist or cannot run here,
  an option it refuses) is one message and exit status 2, not a worker failing to boot.

Models load in each worker after the fork (no preload): MediaPipe's and torch's threads do
not survive a fork.
"""
from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile
import traceback

from gunicorn.app.base import BaseApplication

from core.errors import BackendUnavailable, ConfigError
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


def check_app(factory, config: dict) -> None:
    """Build the app once, as a worker will, in a child process that then exits: every
    check ``factory`` makes (settings, backend name and options, whether the backend can
    run here, its weights) happens before gunicorn listens. The child loads the models
    once more than the workers do (and skips a ``WARMUP``); this process stays free of
    them and of their threads, which would not survive the workers' fork.

    Raises:
        ConfigError, BackendUnavailable: what ``factory`` raised, the same message (the
            child's traceback as ``child_traceback``).
        RuntimeError: anything else went wrong there (its traceback in the message).
    """
    import sys

    checked = {**config, "WARMUP": 0} if "WARMUP" in config else dict(config)
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: build, report, and leave without running the parent's code
        try:
            os.close(read_end)
            # Its metrics stay in this process (no files in the workers' directory).
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            root = logging.getLogger()
            if root.level > logging.DEBUG:  # the workers say the same at INFO
                root.setLevel(max(root.level, logging.WARNING))
            try:
                factory(checked)
                report = None
            except (ConfigError, BackendUnavailable) as exc:
                kind = "ConfigError" if isinstance(exc, ConfigError) else "BackendUnavailable"
                report = (kind, str(exc), traceback.format_exc())
            except BaseException as exc:  # any failure is reported, and the child exits
                report = ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(report, out)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        data = answer.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"the start-up check (building the app in process {pid}) died "
                           f"(wait status {status}) before saying how it went; see its output "
                           "above")
    report = pickle.loads(data)
    if report is None:
        return
    kind, message, child_traceback = report
    errors = {"ConfigError": ConfigError, "BackendUnavailable": BackendUnavailable}
    if kind in errors:
        exc = errors[kind](message)
        exc.child_traceback = child_traceback
        raise exc
    raise RuntimeError(f"the app failed to build at start-up: {message}\n{child_traceback}")


def _metrics_directory() -> str | None:
    """The directory the workers' metrics go to (``PROMETHEUS_MULTIPROC_DIR``), made ready:
    one given is created when missing and emptied of an earlier run's files; otherwise a
    new temporary one is made and set, and returned for the caller to remove."""
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not metrics_dir:
        metrics_dir = tempfile.mkdtemp(prefix="people-matting-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        return metrics_dir
    os.makedirs(metrics_dir, exist_ok=True)
    for entry in os.scandir(metrics_dir):  # stale files of an earlier run
        if entry.name.endswith(".db"):
            os.unlink(entry.path)
    return None


def serve(factory, config: dict) -> None:
    """Run ``factory`` (a service's ``create_app``) under gunicorn with ``config``'s
    ``HOST``, ``PORT``, ``WORKERS``, ``COMPUTE_THREADS``, ``QUEUE`` and ``REQUEST_DEADLINE``.

    Raises:
        ConfigError, BackendUnavailable: the app cannot be built with ``config``
            (:func:`check_app`); nothing was started.
    """
    workers = resolve_workers(config["WORKERS"])
    threads = resolve_compute_threads(config["COMPUTE_THREADS"], workers)
    config = {**config, "WORKERS": workers, "COMPUTE_THREADS": threads}
    # Each worker's libraries start their pools at this size (numba and OpenBLAS read the
    # environment when first imported, which happens in the worker after the fork).
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):
        os.environ[name] = str(threads)
    check_app(factory, config)
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
    owned = _metrics_directory()
    server_pid = os.getpid()
    log.info("serving on %s with %d gunicorn workers (%d compute threads each), %d requests "
             "computing and %d waiting at most", options["bind"], workers, threads, workers,
             int(config["QUEUE"]))
    try:
        ServiceApplication(factory, config, options).run()
    finally:
        # gunicorn's workers leave run() too, by SystemExit (a worker that stops, or fails
        # to boot): only the server, once its workers are gone, removes the directory they
        # all write to.
        if owned and os.getpid() == server_pid:
            shutil.rmtree(owned, ignore_errors=True)
