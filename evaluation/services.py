"""Start the two services as real processes on free loopback ports (tests, evaluation,
benchmarks): the real thing, never a stand-in.

    with running_services() as urls:
        requests.post(urls.matting + "/matte", files={"image": ...})
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServiceURLs:
    segmentation: str
    matting: str
    processes: tuple = ()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 300.0) -> None:
    """Poll ``url/health`` until it answers 200; fail fast if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service for {url} exited with code {process.returncode}")
        try:
            if requests.get(url + "/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not become healthy within {timeout:.0f} s")


def start_service(package: str, port: int, args: list[str] = (), env: dict | None = None,
                  log_path: Path | None = None) -> subprocess.Popen:
    """``python -m <package> --port <port> ...`` from the repo root (whose code it runs)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", package, "--port", str(port), *args],
                            cwd=REPO_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_services(segmentation_args: list[str] = (), matting_args: list[str] = (),
                     env: dict | None = None, log_dir: Path | None = None):
    """Both services on free ports; yields :class:`ServiceURLs`; stops them on exit."""
    seg_port, mat_port = free_port(), free_port()
    seg_url, mat_url = f"http://127.0.0.1:{seg_port}", f"http://127.0.0.1:{mat_port}"
    logs = (None, None) if log_dir is None else (Path(log_dir) / "segmentation.log",
                                                 Path(log_dir) / "matting.log")
    seg = start_service("segmentation_api", seg_port, list(segmentation_args), env, logs[0])
    mat = None
    try:
        mat = start_service("matting_api", mat_port,
                            ["--segmentation-url", seg_url, *matting_args], env, logs[1])
        wait_healthy(seg_url, seg)
        wait_healthy(mat_url, mat)
        log.info("services up: segmentation %s, matting %s", seg_url, mat_url)
        yield ServiceURLs(seg_url, mat_url, (seg, mat))
    finally:
        for process in (mat, seg):
            if process is not None:
                stop(process)


# --------------------------------------------------------------------------- the job queue


def redis_server_binary() -> str | None:
    """``redis-server`` on PATH (Debian: ``apt-get install redis-server``), else None."""
    import shutil

    return shutil.which("redis-server")


def start_redis(port: int, folder: Path, persist: bool = False) -> subprocess.Popen:
    """A real ``redis-server`` on ``127.0.0.1:port`` with its files in ``folder``
    (``persist``: an append-only file, so it keeps its data over a restart).

    Raises:
        FileNotFoundError: no ``redis-server`` (``apt-get install redis-server``).
        TimeoutError: it did not answer within 20 s.
    """
    binary = redis_server_binary()
    if binary is None:
        raise FileNotFoundError("redis-server not found: apt-get install redis-server "
                                "(scripts/test.sh does it)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", "--appendonly", "yes" if persist else "no", "--daemonize", "no",
         "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}; see {folder}/redis.log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        time.sleep(0.1)
    stop(process)
    raise TimeoutError(f"redis-server on port {port} did not answer within 20 s")


def start_worker(env: dict, log_path: Path | None = None, args: list[str] = ()) -> subprocess.Popen:
    """``python -m jobs worker`` from the repo root, in a session of its own (so that
    ``os.killpg`` reaches its pool processes too)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "jobs", "worker", *args], cwd=REPO_ROOT,
                            env=full_env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_worker(process: subprocess.Popen, kill: bool = False, timeout: float = 30) -> None:
    """Stop a worker and its pool processes: a warm shutdown (SIGTERM: the task in hand is
    finished first), or ``kill`` (SIGKILL to the whole group, as when a machine dies)."""
    import signal

    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
