"""Load on the real services, loopback only: one client, then many, in one run.

    .venv/bin/python benchmarks/load.py [--seconds 60] [--clients 16] [--soak 600]

Starts both services the way the README says (``python -m segmentation_api``,
``python -m matting_api``, default settings) on free loopback ports, unless ``--matting-url``
points at running ones. One 1280x720 photo (a portrait from ``../shared/data`` when present,
else the bundled sample fitted to 1280x720) is posted to ``POST /matte`` over and over:

1. one client for ``--seconds``: throughput and latency percentiles;
2. ``--clients`` clients at once for ``--seconds``: throughput (and its ratio to one
   client's), p50 / p95 / max of accepted requests, counts by status, how fast 503s come
   back (and when the first came), and the resident memory of every service process
   (gunicorn workers included) before and after.

A client that gets 503 waits what ``Retry-After`` says (at most 1 s) and tries again, as a
well-behaved client does. ``--soak 600`` then keeps ``--clients`` clients going for that
many seconds and samples each process's memory every 5 s, reporting each 30 s window's
median against the one ending at the first minute (single samples swing with each
request's phase). The checks of the issue's acceptance are printed at the end; the
figures go to ``--out`` as JSON. Bounded: every phase ends on time, every request has a
timeout.
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import requests

from core.compositing import fit_image
from core.images import encode_image, read_image_file
from evaluation import environment
from evaluation.datasets import default_data_dir
from evaluation.services import REPO_ROOT, running_services

PHOTO = Path("portraits") / "images" / "83.jpg"   # 1280x720, one person


def load_photo(data_dir: Path) -> bytes:
    path = data_dir / PHOTO
    image = read_image_file(path if path.is_file() else REPO_ROOT / "samples" / "astronaut.jpg")
    return encode_image(fit_image(image, (720, 1280), "cover"), "jpeg")


def percentile(values, q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def process_tree(pids) -> dict[str, float]:
    """RSS in MiB of each process and its children (gunicorn's workers)."""
    out = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                name = " ".join(proc.cmdline()[1:4])[:60] or proc.name()
                out[f"{proc.pid} {name}"] = proc.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            continue
    return out


def run_clients(url: str, photo: bytes, clients: int, seconds: float) -> dict:
    """``clients`` threads posting ``photo`` for ``seconds``; returns what they saw."""
    records: list[tuple[float, int, float]] = []   # (start offset, status, seconds)
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + seconds

    def client():
        session = requests.Session()
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                response = session.post(url + "/matte", files={"image": ("photo.jpg", photo)},
                                        data={"format": "jpeg"}, timeout=300)
                status, retry = response.status_code, response.headers.get("Retry-After")
            except requests.RequestException:
                status, retry = 0, None   # connection refused or reset: counted, never hidden
            elapsed = time.perf_counter() - t0
            with lock:
                records.append((t0 - started, status, elapsed))
            if status == 503:
                time.sleep(min(float(retry or 1), 1.0))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 330)
    wall = time.perf_counter() - started
    ok = [r[2] for r in records if r[1] == 200]
    rejected = [r for r in records if r[1] == 503]
    return {
        "clients": clients, "seconds": wall,
        "status": dict(Counter(str(r[1]) for r in records)),
        "throughput_per_s": len(ok) / wall,
        "p50_s": percentile(ok, 0.5), "p95_s": percentile(ok, 0.95),
        "max_s": max(ok) if ok else float("nan"),
        "rejected": len(rejected),
        "reject_p95_ms": percentile([r[2] * 1e3 for r in rejected], 0.95),
        "reject_max_ms": max((r[2] * 1e3 for r in rejected), default=float("nan")),
        "first_reject_s": min((r[0] for r in rejected), default=None),
    }


def soak(url: str, photo: bytes, clients: int, seconds: float, pids, every: float = 5.0,
         window: float = 30.0) -> dict:
    """``clients`` clients for ``seconds``; each process's RSS sampled every ``every`` s.

    Under constant load every worker always holds one request's arrays, whose size swings
    with the request's phase (the matting solve's large arrays are ``mmap``-ed and given
    back at once), so single samples move by ~100-200 MB either way. Growth is therefore
    judged on the median of each ``window`` (30 s): the largest later window's median
    against the window ending at the first minute. The floor (each window's smallest
    sample: what a worker keeps between phases, where a leak would show) and the largest
    single sample are reported too."""
    samples = []
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(run_clients(url, photo, clients, seconds)))
    runner.start()
    started = time.perf_counter()
    while runner.is_alive():
        samples.append((time.perf_counter() - started, process_tree(pids)))
        runner.join(timeout=every)
    names = sorted({name for _, sample in samples for name in sample})

    def window_stat(name, end, stat):
        values = [s[name] for t, s in samples if end - window <= t < end and name in s]
        return stat(values) if values else None

    def growth_of(name, stat):
        base = window_stat(name, ends[0], stat)
        later = [v for v in (window_stat(name, end, stat) for end in ends[1:]) if v is not None]
        return (max(later) / base - 1.0) if base and later else 0.0

    ends = [window * k for k in range(2, int(samples[-1][0] // window) + 1)]  # 60 s, 90 s...
    baseline = {n: window_stat(n, ends[0], statistics.median) for n in names} if ends else {}
    growth, floor, peak = {}, {}, {}
    for name in names:
        base = baseline.get(name)
        if not base:
            continue
        growth[name] = growth_of(name, statistics.median)
        floor[name] = growth_of(name, min)
        later = [s[name] for t, s in samples if t >= ends[0] and name in s]
        peak[name] = max(later) / base - 1.0 if later else 0.0
    return {"load": result, "samples": samples, "after_first_minute": baseline,
            "max_growth_after_first_minute": growth, "floor_growth": floor,
            "largest_sample_growth": peak, "window_s": window, "every_s": every}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of soak after the run")
    parser.add_argument("--matting-url", help="use running services instead of starting them")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("results") / "load.json")
    args = parser.parse_args(argv)
    photo = load_photo(args.data or default_data_dir())
    report = {"machine": environment.describe(),
              "command": "benchmarks/load.py " + " ".join(argv or __import__("sys").argv[1:])}

    def measure(url: str, pids) -> None:
        health = requests.get(url + "/health", timeout=10).json()
        report["admission"] = health.get("admission")
        requests.post(url + "/matte", files={"image": photo}, timeout=300)   # warm up
        report["rss_before_mib"] = process_tree(pids)
        print(f"one client for {args.seconds:.0f} s ...", flush=True)
        report["one"] = run_clients(url, photo, 1, args.seconds)
        print(f"{args.clients} clients for {args.seconds:.0f} s ...", flush=True)
        report["many"] = run_clients(url, photo, args.clients, args.seconds)
        report["rss_after_mib"] = process_tree(pids)
        if args.soak:
            print(f"soak: {args.clients} clients for {args.soak:.0f} s ...", flush=True)
            report["soak"] = soak(url, photo, args.clients, args.soak, pids)

    if args.matting_url:
        measure(args.matting_url.rstrip("/"), [])
    else:
        with running_services() as urls:
            measure(urls.matting, [p.pid for p in urls.processes])
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\nwrote {args.out}")
    return 0


def print_report(report: dict) -> None:
    one, many = report["one"], report["many"]
    print(f"\n{'':10s} {'req/s':>7s} {'p50 s':>7s} {'p95 s':>7s} {'max s':>7s}  statuses")
    for label, row in (("1 client", one), (f"{many['clients']} clients", many)):
        print(f"{label:10s} {row['throughput_per_s']:7.2f} {row['p50_s']:7.2f} {row['p95_s']:7.2f} "
              f"{row['max_s']:7.2f}  {row['status']}")
    ratio = many["throughput_per_s"] / one["throughput_per_s"] if one["throughput_per_s"] else 0.0
    queue = (report.get("admission") or {}).get("queue", 0)
    bound = (queue + 1) * one["p50_s"]
    server_errors = {k: v for k, v in many["status"].items() if k != "503" and (k == "0" or k >= "500")}
    print(f"\nthroughput ratio {ratio:.2f} (target >= 0.95); 503s: {many['rejected']}, "
          f"p95 {many['reject_p95_ms']:.0f} ms, max {many['reject_max_ms']:.0f} ms (target <= 100), "
          f"first after {many['first_reject_s']} s")
    print(f"accepted p95 {many['p95_s']:.2f} s vs (queue {queue} + 1) x one-client p50 = {bound:.2f} s")
    print(f"errors other than 503: {server_errors or 'none'}")
    print("\nRSS MiB before -> after:")
    for name, before in report["rss_before_mib"].items():
        print(f"  {name:66s} {before:7.0f} -> {report['rss_after_mib'].get(name, float('nan')):7.0f}")
    if "soak" in report:
        soaked = report["soak"]
        print(f"\nsoak ({soaked['load']['seconds']:.0f} s, {soaked['load']['throughput_per_s']:.2f} "
              f"req/s, statuses {soaked['load']['status']}): RSS after the first minute, the "
              f"largest later {soaked['window_s']:.0f} s window median against the one ending "
              f"at 60 s (target <= +10 %), the same for each window's floor (smallest sample), "
              f"and the largest single sample:")
        for name, growth in soaked["max_growth_after_first_minute"].items():
            print(f"  {name:66s} {soaked['after_first_minute'][name]:7.0f} MiB  "
                  f"{growth * 100:+6.1f} %  (floor {soaked['floor_growth'][name] * 100:+6.1f} %, "
                  f"sample {soaked['largest_sample_growth'][name] * 100:+6.1f} %)")


if __name__ == "__main__":
    raise SystemExit(main())
