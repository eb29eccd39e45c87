"""HTTP client of the segmentation service, as the matting service uses it.

Images go as files: the bytes the user uploaded are forwarded untouched (no re-encode),
arrays go as ``.npy``. The trimap comes back with the soft mask as a second channel, as raw
``.npy`` (cheaper than PNG coding at both ends on loopback). A 406 from segmentation means "no person" and is not an error.
"""
from __future__ import annotations

import io
import logging
import threading
import time

import numpy as np
import requests

from core.images import encode_image
from service_common.errors import APIError
from service_common.timing import parse_server_timing

log = logging.getLogger(__name__)


class SegmentationUnavailable(APIError):
    def __init__(self, url: str, why: str):
        super().__init__(503, f"segmentation service at {url} is unavailable: {why}",
                         "segmentation_unavailable")


class SegmentationClient:
    def __init__(self, url: str, timeout: float = 120.0, connect_timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.timeout = (connect_timeout, timeout)
        self._local = threading.local()  # requests.Session is not thread-safe: one per thread

    @property
    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def trimap(self, image: np.ndarray, image_bytes: bytes | None = None,
               trimap_params: dict | None = None
               ) -> tuple[np.ndarray | None, np.ndarray | None, dict]:
        """Ask for the trimap of ``image`` and the soft person mask it was built from.

        Args:
            image: the decoded ``uint8`` RGB image (sent as ``.npy`` when no bytes are given).
            image_bytes: the original file bytes, forwarded as they are when given.
            trimap_params: query parameters (thresholds, iterations...), passed through.
        Returns:
            ``(trimap, mask, timing)``: ``uint8`` trimap and ``float32`` mask in [0, 1]
            (both ``None`` when nobody is there); timing has ``round_trip_ms``, the
            service's own ``server_ms`` and ``upload_bytes``.
        Raises:
            SegmentationUnavailable: connection refused, timeout, or a 5xx.
            APIError: segmentation rejected the request (4xx other than 406), same status.
        """
        body = image_bytes if image_bytes is not None else encode_image(image, "npy")
        started = time.perf_counter()
        try:
            response = self._session.post(
                f"{self.url}/trimap",
                # Raw .npy: at 720p 1.8 MB over loopback costs less than PNG coding both ends.
                params={**(trimap_params or {}), "format": "npy", "include_mask": "1"},
                data=body, headers={"Content-Type": "application/octet-stream"},
                timeout=self.timeout)
        except requests.Timeout:
            raise SegmentationUnavailable(self.url, "timed out") from None
        except requests.ConnectionError as exc:
            raise SegmentationUnavailable(self.url, f"cannot connect ({type(exc).__name__})") from None
        timing = {"round_trip_ms": (time.perf_counter() - started) * 1000.0,
                  "server_ms": sum(parse_server_timing(response.headers.get("Server-Timing", "")).values()),
                  "upload_bytes": len(body)}
        if response.status_code == 406:
            return None, None, timing
        if response.status_code >= 500:
            raise SegmentationUnavailable(self.url, f"it answered {response.status_code}: "
                                          f"{_error_text(response)}")
        if response.status_code != 200:
            raise APIError(response.status_code, f"segmentation: {_error_text(response)}",
                           "segmentation_rejected")
        try:
            both = np.load(io.BytesIO(response.content), allow_pickle=False)
        except ValueError as exc:
            raise SegmentationUnavailable(self.url, f"unreadable trimap ({exc})") from None
        if both.shape != image.shape[:2] + (2,):
            raise SegmentationUnavailable(self.url, f"trimap shape {both.shape} does not "
                                          f"match the image {image.shape[:2]}")
        return both[:, :, 0], both[:, :, 1].astype(np.float32) / 255.0, timing

    def health(self, timeout: float = 2.0) -> dict:
        """Segmentation's ``/health`` plus ``reachable``; never raises."""
        try:
            response = self._session.get(f"{self.url}/health", timeout=timeout)
            return {"url": self.url, "reachable": response.ok, **response.json()}
        except (requests.RequestException, ValueError) as exc:
            return {"url": self.url, "reachable": False, "error": type(exc).__name__}


def _error_text(response: requests.Response) -> str:
    try:
        return response.json().get("error", response.text[:200])
    except ValueError:
        return response.text[:200]
