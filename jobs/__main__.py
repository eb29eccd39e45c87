"""``python -m jobs worker [--flags] [-- celery worker options]``: a jobs worker.

Flags are the worker settings (``--jobs-redis-url``, ``--jobs-dir``, ``--concurrency``...;
each also an environment variable, see ``--help``). Anything after ``--`` goes to
``celery worker`` as is (e.g. ``-- --hostname gpu1@%h``).
"""
from __future__ import annotations

import os
import socket
import sys


def main(argv=None) -> int:
    from service_common.config import build_parser, configure_logging, load_config
    from service_common.settings import WORKER_SETTINGS

    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = build_parser("A jobs worker: takes video and photo jobs from the queue "
                          "(Celery on Redis) and does them.", WORKER_SETTINGS)
    parser.prog = "python -m jobs"
    parser.add_argument("command", choices=["worker"], help="what to run")
    args = parser.parse_args(argv)
    config = load_config(WORKER_SETTINGS, args=args)  # checks everything before starting
    # jobs.worker reads its configuration from the environment when imported: flags go there.
    for setting in WORKER_SETTINGS:
        value = getattr(args, setting.key.lower(), None)
        if value is not None:
            os.environ[setting.env] = str(value)
    configure_logging(config["LOG_LEVEL"])

    from jobs.tasks import worker_processes
    from jobs.worker import app

    name = f"jobs{os.getpid()}@{socket.gethostname()}"
    celery_args = ["worker", "--loglevel", str(config["LOG_LEVEL"]).upper(),
                   "--concurrency", str(worker_processes(config)), "--pool", "prefork",
                   "--hostname", name, "--without-gossip", "--without-mingle"]
    app.worker_main(celery_args + extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
