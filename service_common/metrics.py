"""Prometheus metrics at ``/metrics`` (prometheus_client): requests by endpoint and status,
latency per endpoint and per stage (from each response's ``Server-Timing``), requests in a
worker (computing + waiting), requests refused for lack of room.

Under the production server the gunicorn workers write to a shared directory
(``PROMETHEUS_MULTIPROC_DIR``, set by :mod:`service_common.server`) and ``/metrics`` adds
them up; in a single process (``flask run``, tests) the default registry is used.
"""
from __future__ import annotations

import os

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from service_common.timing import parse_server_timing

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
REQUESTS = Counter("people_matting_requests_total", "Requests answered",
                   ["service", "endpoint", "status"])
LATENCY = Histogram("people_matting_request_seconds", "Time to answer a request",
                    ["service", "endpoint"], buckets=_BUCKETS)
STAGES = Histogram("people_matting_stage_seconds", "Time of each pipeline stage",
                   ["service", "stage"], buckets=_BUCKETS)
IN_WORKER = Gauge("people_matting_requests_in_worker", "Requests computing or waiting",
                  ["service"], multiprocess_mode="livesum")
REJECTED = Counter("people_matting_rejected_total", "Requests refused: no room (503)",
                   ["service"])


class Metrics:
    """The metrics of one service, recorded around every request."""

    def __init__(self, service: str):
        self.service = service
        # Present from the start (at 0), so a dashboard sees them before the first event.
        REJECTED.labels(service)
        IN_WORKER.labels(service).set(0)

    def rejected(self) -> None:
        REJECTED.labels(self.service).inc()

    def queue_depth(self, value: int) -> None:
        IN_WORKER.labels(self.service).set(value)

    def init_app(self, app: Flask) -> None:
        import time

        @app.before_request
        def _start_clock():
            g.metrics_started = time.perf_counter()

        @app.after_request
        def _observe(response):
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            REQUESTS.labels(self.service, endpoint, str(response.status_code)).inc()
            started = g.get("metrics_started")
            if started is not None:
                LATENCY.labels(self.service, endpoint).observe(time.perf_counter() - started)
            for stage, ms in parse_server_timing(response.headers.get("Server-Timing", "")).items():
                STAGES.labels(self.service, stage).observe(ms / 1000.0)
            return response

        @app.get("/metrics")
        def metrics_endpoint():
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                from prometheus_client import multiprocess

                registry = CollectorRegistry()
                multiprocess.MultiProcessCollector(registry)
            else:
                registry = REGISTRY
            # content_type, not mimetype: Flask adds "; charset=utf-8" to a text/* mimetype,
            # and CONTENT_TYPE_LATEST has its charset already.
            return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
