"""The production server as users start it (``python -m ...``: gunicorn), through real
processes on loopback: workers, back-pressure (immediate 503s), API keys, the rate limit,
``image_url`` and its guard, metrics, the API description, access logs.

Speed figures live in ``benchmarks/load.py``; these tests check behaviour only.
"""
from __future__ import annotations

import http.server
import os
import signal
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client import CONTENT_TYPE_LATEST

from core.images import decode_image
from evaluation.services import free_port, running_services, start_service, stop, wait_healthy
from service_common.server import cpu_count
from tests.conftest import SAMPLES

TIMEOUT = 120


@pytest.fixture(scope="module")
def photo():
    return (SAMPLES / "astronaut.jpg").read_bytes()


@pytest.fixture(scope="module")
def photo_server(photo):
    """A loopback web server with the sample photo at /astronaut.jpg, a redirect to another
    loopback address at /elsewhere, and a never-ending body at /endless."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/elsewhere":
                self.send_response(302)
                port = self.server.server_address[1]
                self.send_header("Location", f"http://127.0.0.2:{port}/astronaut.jpg")
                self.end_headers()
            elif self.path == "/endless":
                self.send_response(200)
                self.end_headers()
                for _ in range(4000):
                    self.wfile.write(b"\0" * 65536)
            else:
                self.send_response(200)
                self.send_header("Content-Length", str(len(photo)))
                self.end_headers()
                self.wfile.write(photo)

        def log_message(self, *args):
            pass

    server = socketserver.ThreadingTCPServer(("0.0.0.0", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """Both services with API keys (one from a file), a rate limit, a one-worker matting
    service with no queue (so a second request at once is refused), and 127.0.0.1 allowed
    for image_url."""
    folder = tmp_path_factory.mktemp("secured")
    keys = folder / "keys.txt"
    keys.write_text("# team keys\nkey-from-file\n")
    env = {"API_KEYS": "key-one", "API_KEYS_FILE": str(keys), "SEGMENTATION_API_KEY": "key-one",
           "MATTING_WORKERS": "1", "MATTING_QUEUE": "0", "RATE_LIMIT": "1000/minute",
           "URL_ALLOWLIST": "127.0.0.1", "URL_TIMEOUT": "5", "MAX_UPLOAD_MB": "20"}
    with running_services(["--backend", "mediapipe"], ["--backend", "closed-form"], env=env,
                          log_dir=folder) as urls:
        yield urls, folder


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def test_default_start_is_gunicorn_sized_to_the_cores(services):
    for url in (services.segmentation, services.matting):
        health = requests.get(url + "/health", timeout=10).json()
        assert health["workers"] == cpu_count()
        assert health["admission"]["slots"] == cpu_count() and health["admission"]["queue"] >= 1


def test_a_burst_gets_immediate_503s_with_retry_after(secured, photo):
    urls, _ = secured
    headers = bearer("key-one")

    def post(_):
        started = time.monotonic()
        r = requests.post(urls.matting + "/matte", files={"image": photo}, headers=headers,
                          timeout=TIMEOUT)
        return r, time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(post, range(4)))
    statuses = sorted(r.status_code for r, _ in results)
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    done = [t for r, t in results if r.status_code == 200]
    for r, seconds in results:
        if r.status_code == 503:
            body = r.json()
            assert body["code"] == "busy" and "QUEUE" in body["error"]
            assert int(r.headers["Retry-After"]) >= 1
            assert seconds < min(done)  # refused at once, not after waiting for the others
    assert requests.get(urls.matting + "/health", timeout=10).ok  # and it goes on


def test_api_keys(secured, photo):
    urls, _ = secured
    r = requests.post(urls.matting + "/matte", files={"image": photo}, timeout=TIMEOUT)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    r = requests.post(urls.matting + "/matte", files={"image": photo}, timeout=TIMEOUT,
                      headers=bearer("wrong"))
    assert r.status_code == 401 and "not valid" in r.json()["error"]
    ok = requests.post(urls.matting + "/matte", files={"image": photo}, timeout=TIMEOUT,
                       headers={"X-API-Key": "key-from-file"})
    assert ok.status_code == 200, ok.text  # and matting used its own key with segmentation
    for open_path in ("/health", "/metrics", "/openapi.json", "/docs"):
        assert requests.get(urls.matting + open_path, timeout=10).status_code == 200
    assert requests.post(urls.segmentation + "/trimap", data=photo,
                         timeout=TIMEOUT).status_code == 401


def test_rate_limit_answers_429(tmp_path, photo):
    env = {"RATE_LIMIT": "2/minute", "SEGMENTATION_WORKERS": "1", "MATTING_WORKERS": "1"}
    with running_services(["--backend", "mediapipe"], ["--backend", "closed-form"], env=env,
                          log_dir=tmp_path) as urls:
        codes = [requests.post(urls.segmentation + "/mask", data=photo, timeout=TIMEOUT)
                 for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].json()["code"] == "too_many_requests" and codes[2].headers["Retry-After"]


def test_image_url_with_the_allow_list(secured, photo_server):
    urls, _ = secured
    headers = bearer("key-one")
    r = requests.post(urls.matting + "/matte", headers=headers, timeout=TIMEOUT,
                      data={"image_url": photo_server + "/astronaut.jpg", "output": "alpha"})
    assert r.status_code == 200, r.text
    assert decode_image(r.content).shape == (512, 512, 3)
    cases = [("/elsewhere", "url_not_allowed"),   # a redirect to a loopback address not allowed
             ("/endless", "url_too_large")]
    for path, code in cases:
        r = requests.post(urls.matting + "/matte", headers=headers, timeout=TIMEOUT,
                          data={"image_url": photo_server + path})
        assert r.status_code == 400 and r.json()["code"] == code, r.text
    r = requests.post(urls.matting + "/matte", headers=headers, timeout=TIMEOUT,
                      data={"image_url": "file:///etc/passwd"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_url"


def test_image_url_refuses_private_addresses_by_default(services, photo_server):
    for url in (photo_server + "/astronaut.jpg", "http://169.254.169.254/latest/meta-data/",
                "http://[::1]:9/", "http://10.0.0.1/x.jpg"):
        r = requests.post(services.matting + "/matte", data={"image_url": url}, timeout=TIMEOUT)
        assert r.status_code == 400 and r.json()["code"] == "url_not_allowed", (url, r.text)


def test_metrics_count_requests_of_every_worker(services, astronaut_bytes):
    for _ in range(3):
        requests.post(services.matting + "/matte", files={"image": astronaut_bytes},
                      timeout=TIMEOUT)
    response = requests.get(services.matting + "/metrics", timeout=10)
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST  # one charset, not two
    text = response.text
    count = next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("people_matting_requests_total{")
                 and 'endpoint="/matte"' in line and 'status="200"' in line)
    assert count >= 3
    assert 'people_matting_stage_seconds_bucket{' in text and 'stage="matting"' in text
    assert "people_matting_rejected_total" in text
    assert "people_matting_requests_in_worker" in text


def test_every_route_is_described(services):
    import matting_api
    import segmentation_api

    for url, module in ((services.matting, matting_api), (services.segmentation, segmentation_api)):
        spec = requests.get(url + "/openapi.json", timeout=10).json()
        assert spec["openapi"].startswith("3.")
        app = module.create_app({"TESTING": True, "WARMUP": 0} if module is matting_api else
                                {"TESTING": True, "BACKEND": "mediapipe"})
        routes = {(rule.rule.replace("<", "{").replace(">", "}"), method.lower())
                  for rule in app.url_map.iter_rules() if not rule.endpoint.endswith(".static")
                  for method in rule.methods - {"HEAD", "OPTIONS"}}
        described = {(path, method) for path, ops in spec["paths"].items() for method in ops}
        assert routes == described
    page = requests.get(services.matting + "/docs", timeout=10)
    assert page.status_code == 200 and "openapi.json" in page.text
    assert requests.get(services.matting + "/api-docs/docs.js", timeout=10).status_code == 200


def test_access_log_lines_carry_the_request_id(secured):
    urls, folder = secured
    requests.get(urls.matting + "/health", headers={"X-Request-Id": "trace-me-7"}, timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "rid=trace-me-7" in (folder / "matting.log").read_text():
            return
        time.sleep(0.2)
    raise AssertionError("no access log line with the request id")


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def test_metrics_folder_outlives_a_worker_that_stops(tmp_path, photo):
    """gunicorn's workers leave the server's code by SystemExit when they stop: the folder
    the server made for the workers' metrics stays until the server itself stops (a worker
    used to remove it, and its replacement then failed to boot: the whole service went)."""
    port = free_port()
    log_path = tmp_path / "segmentation.log"
    process = start_service("segmentation_api", port, ["--backend", "mediapipe", "--workers", "2"],
                            env={"TMPDIR": str(tmp_path)}, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        (folder,) = tmp_path.glob("people-matting-metrics-*")
        deadline = time.monotonic() + 120
        while len(_children(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        first, *_ = sorted(_children(process.pid))
        os.kill(first, signal.SIGTERM)
        # Its replacement boots (the service's ready line: two workers, then the new one).
        while log_path.read_text().count("segmentation service ready") < 3:
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "no replacement worker"
            time.sleep(0.3)
        assert folder.is_dir() and "FileNotFoundError" not in log_path.read_text()
        for _ in range(4):
            assert requests.post(url + "/mask", data=photo, timeout=TIMEOUT).status_code == 200
        assert requests.get(url + "/metrics", timeout=10).status_code == 200
    finally:
        stop(process)
    assert not folder.exists()  # the server removed it when it stopped
