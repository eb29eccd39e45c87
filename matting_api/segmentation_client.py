"""The segmentation service as the matting service's person source, over HTTP.

:class:`RemotePersonSource` has the interface of :class:`core.pipeline.PersonSource`, so
:class:`core.pipeline.Pipeline` runs the same whether people are found in this process or
by the segmentation service. Images go as files: the bytes the user uploaded are forwarded
untouched (no re-encode), arrays go as ``.npy``. The answer is the self-describing ``.npz``
of :func:`service_common.wire.encode_segmentation` (trimap, soft mask, people). A 406 from
segmentation means "nobody there" and is not an error.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import requests
from flask import has_request_context

from core.errors import UserError
from core.images import encode_image
from core.people import EVERYONE, Selection
from core.pipeline import Segmentation, empty_trimap
from core.temporal import VideoState
from service_common.admission import seconds_left
from service_common.errors import REQUEST_ID_HEADER, ServiceUnavailable, request_id
from service_common.timing import parse_server_timing
from service_common.wire import decode_segmentation

log = logging.getLogger(__name__)


class SegmentationUnavailable(ServiceUnavailable):
    """The segmentation service cannot be reached, timed out or failed (a 503 to our caller)."""

    def __init__(self, url: str, why: str):
        super().__init__(f"segmentation service at {url} is unavailable: {why}",
                         "segmentation_unavailable")


class RemotePersonSource:
    """Ask the segmentation service for each image's trimap, soft mask and people.

    Args:
        url: the service's base URL.
        timeout: seconds to wait for an answer (at most the calling request's deadline);
            ``connect_timeout`` for the connection. One keep-alive session per thread, so
            calls reuse their connections.
        api_key: sent as ``Authorization: Bearer`` when segmentation has API keys on.
    """

    name = "segmentation-service"

    def __init__(self, url: str, timeout: float = 120.0, connect_timeout: float = 5.0,
                 api_key: str | None = None):
        self.url = url.rstrip("/")
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._local = threading.local()  # requests.Session is not thread-safe: one per thread

    @property
    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def segment(self, image: np.ndarray, *, encoded: bytes | None = None,
                trimap: Mapping[str, Any] | None = None, max_people: int | None = None,
                people: Selection = EVERYONE, state: VideoState | None = None) -> Segmentation:
        """See :meth:`core.pipeline.PersonSource.segment`.

        Inside a request of the matting service its request id is forwarded, so both
        services log the same id. ``timings`` of the result hold ``segmentation`` (the
        service's own time) and ``transport`` (the rest of the round trip).

        Raises:
            SegmentationUnavailable: connection refused, timeout, a 5xx or an unreadable answer.
            UserError: segmentation refused the request (a 4xx other than 406), same status.

        With a video ``state``, the frame is observed but its mask is not smoothed: the
        trimap is built by the service, so over HTTP only alpha is smoothed over time.
        """
        if state is not None:
            state.observe(image)
        body = encoded if encoded is not None else encode_image(image, "npy")
        query = {**(trimap or {}), "format": "npz"}
        if max_people is not None:
            query["max_people"] = max_people
        if not people.everyone:
            query["people"] = people.as_param()
        headers = {"Content-Type": "application/octet-stream", **self._auth}
        if has_request_context():
            headers[REQUEST_ID_HEADER] = request_id()
        started = time.perf_counter()
        try:
            response = self._session.post(f"{self.url}/trimap", params=query, data=body,
                                          headers=headers,
                                          timeout=(self.connect_timeout, seconds_left(self.timeout)))
        except requests.Timeout:
            raise SegmentationUnavailable(self.url, "timed out") from None
        except requests.ConnectionError as exc:
            raise SegmentationUnavailable(self.url, f"cannot connect ({type(exc).__name__})") from None
        round_trip = (time.perf_counter() - started) * 1e3
        server = sum(parse_server_timing(response.headers.get("Server-Timing", "")).values())
        timings = {"segmentation": server, "transport": max(round_trip - server, 0.0)}
        if response.status_code == 406:
            return Segmentation(empty_trimap(image.shape[:2]), None, [], timings)
        if response.status_code == 503:
            retry = response.headers.get("Retry-After")
            raise ServiceUnavailable(f"segmentation is busy: {_error_text(response)}", "busy",
                                     int(retry) if retry and retry.isdigit() else None)
        if response.status_code >= 500:
            raise SegmentationUnavailable(self.url, f"it answered {response.status_code}: "
                                          f"{_error_text(response)}")
        if response.status_code != 200:
            code = _error_code(response) or "segmentation_rejected"
            raise UserError(f"segmentation: {_error_text(response)}",
                            status=response.status_code, code=code)
        try:
            segmentation = decode_segmentation(response.content, image.shape[:2])
        except ValueError as exc:
            raise SegmentationUnavailable(self.url, f"unreadable answer ({exc})") from None
        segmentation.timings = timings
        return segmentation

    def health(self, timeout: float = 2.0) -> dict:
        """Segmentation's ``/health`` plus ``reachable``; never raises."""
        try:
            response = self._session.get(f"{self.url}/health", timeout=timeout, headers=self._auth)
            return {"url": self.url, "reachable": response.ok, **response.json()}
        except (requests.RequestException, ValueError) as exc:
            return {"url": self.url, "reachable": False, "error": type(exc).__name__}

    def describe(self) -> dict:
        return {"name": self.name, "url": self.url}


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_text(response: requests.Response) -> str:
    return _json(response).get("error") or response.text[:200]


def _error_code(response: requests.Response) -> str | None:
    return _json(response).get("code")
