"""Video jobs through the real queue: throughput of one long clip with 1 worker, then 2.

Makes a 60-second 854x480 30 fps clip with sound by looping the CC BY 4.0 room video
(``../shared/data/video/one-by-one-person-detection.mp4``, 768x432, scaled and cropped to
fill 854x480; its frames retimed to 30 fps and looped), starts a real ``redis-server``,
the matting service and N workers (``python -m jobs worker``, one process each) on loopback,
posts the clip to ``POST /jobs`` (composite over green, the video defaults) and polls
until it is done. For each worker count it prints:

- wall time from the upload to the result, and frames per second of that;
- where it went: the upload (the service checks the video), the wait until the first
  chunk starts (queue + plan), the chunks (sum of their work and the span they took),
  the join (remux + audio);
- the frames worked twice (the chunks' overlap) and the chunks each worker did;

and, with ``--baseline``, the same clip through :func:`core.video.convert_video` in one
process (the video command; no queue, no chunks). From these it estimates what N machines
would give (see docs/video.md "Jobs over HTTP").

Usage::

    .venv/bin/python benchmarks/bench_jobs.py [--workers 1 2] [--seconds 60] [--baseline]
        [--chunk-frames 300] [--overlap 16] [--keep]
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import requests

from core.video import VideoReader, convert_video
from evaluation.clips import tone, write_clip
from evaluation.environment import load_average
from evaluation.services import (
    free_port,
    start_redis,
    start_service,
    start_worker,
    stop,
    stop_worker,
    wait_healthy,
)

ROOM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "video" / \
    "one-by-one-person-detection.mp4"


def make_clip(path: Path, seconds: float, size=(480, 854), fps: int = 30, source: Path = ROOM) -> int:
    """``seconds`` of ``source`` (its frames in order, looped, shown at ``fps``) at ``size``
    (height, width), H.264 + an AAC tone; returns the frame count."""
    count = int(seconds * fps)
    with VideoReader(source, size=size) as reader:
        frames = [f.image for f in reader]
    return write_clip(path, (frames[i % len(frames)] for i in range(count)), fps,
                      tone(seconds, level=0.1), video_options={"preset": "veryfast", "crf": "20"})


def run_job(clip: Path, workers: int, folder: Path, chunk_frames: int, overlap: int) -> dict:
    """One job through redis-server + the service + ``workers`` workers; its figures."""
    import redis

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    redis_process = start_redis(port, folder / "redis")
    env = {"JOBS_REDIS_URL": f"redis://127.0.0.1:{port}/0", "JOBS_DIR": str(folder / "jobs"),
           "JOBS_CHUNK_FRAMES": str(chunk_frames), "JOBS_OVERLAP_FRAMES": str(overlap),
           "JOBS_CONCURRENCY": "1", "MATTING_WORKERS": "1", "MATTING_WARMUP": "0"}
    procs, service = [], None
    try:
        procs = [start_worker(env, folder / f"worker{i}.log") for i in range(workers)]
        service_port = free_port()
        url = f"http://127.0.0.1:{service_port}"
        service = start_service("matting_api", service_port, ["--segmentation-url",
                                "http://127.0.0.1:9"], env, folder / "matting.log")
        wait_healthy(url, service)
        deadline = time.monotonic() + 300
        while len(requests.get(url + "/health", timeout=10).json()["jobs"]["workers"]) < workers:
            if time.monotonic() > deadline:
                raise TimeoutError("the workers did not come up")
            time.sleep(0.5)
        time.sleep(3)  # let the pool processes finish loading their models
        started = time.perf_counter()
        with open(clip, "rb") as f:
            response = requests.post(url + "/jobs", files={"video": (clip.name, f)}, timeout=300)
        response.raise_for_status()
        uploaded = time.perf_counter()
        job_id = response.json()["id"]
        first_chunk = None
        client = redis.Redis(port=port, decode_responses=True)
        while True:
            state = requests.get(f"{url}/jobs/{job_id}", timeout=10).json()
            if first_chunk is None and client.hlen(f"pm:job:{job_id}:workers"):
                first_chunk = time.perf_counter()
            if state["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.2)
        finished = time.perf_counter()
        if state["state"] != "done":
            raise RuntimeError(f"job ended {state['state']}: {state['error']}")
        seconds = client.hgetall(f"pm:job:{job_id}:seconds")
        by_worker: dict[str, int] = {}
        for name in client.hvals(f"pm:job:{job_id}:workers"):
            by_worker[name] = by_worker.get(name, 0) + 1
        record = client.hgetall(f"pm:job:{job_id}")
        chunk_seconds = [float(v) for v in seconds.values()]
        return {
            "workers": workers, "frames": state["frames_total"],
            "wall_s": round(finished - started, 2),
            "frames_per_second": round(state["frames_total"] / (finished - started), 2),
            "upload_s": round(uploaded - started, 2),
            "until_first_chunk_s": round((first_chunk or finished) - uploaded, 2),
            "chunks": len(chunk_seconds),
            "chunk_work_s": round(sum(chunk_seconds), 2),
            "chunk_s_min_max": [round(min(chunk_seconds), 2), round(max(chunk_seconds), 2)],
            "join_s": float(record.get("join_seconds") or 0),
            "overlap_frames": overlap * (len(chunk_seconds) - 1),
            "chunks_per_worker": sorted(by_worker.values()),
            "load_average_after": load_average(),
        }
    finally:
        if service is not None:
            stop(service)
        for p in procs:
            stop_worker(p)
        stop(redis_process)


def estimate(result: dict, machines: int, chunk_frames: int, overlap: int) -> float:
    """Frames per second ``machines`` machines of this kind would give to one job: each
    does one chunk at a time at the rate one worker did here (``result``: a one-worker
    run); the chunks go out in rounds (``ceil(chunks / machines)``); every chunk but the
    first works ``overlap`` frames more; the upload, planning and join do not spread."""
    frames = result["frames"]
    chunks = max(1, math.ceil(frames / chunk_frames))
    per_frame = result["chunk_work_s"] / (frames + result["overlap_frames"])
    chunk_time = (min(chunk_frames, frames) + (overlap if chunks > 1 else 0)) * per_frame
    serial = result["upload_s"] + result["until_first_chunk_s"] + result["join_s"]
    return frames / (serial + math.ceil(chunks / machines) * chunk_time)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--chunk-frames", type=int, default=300)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--baseline", action="store_true",
                        help="also convert the clip in one process (the video command)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if not ROOM.exists():
        raise SystemExit(f"{ROOM} not found (../shared/data/video)")
    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    try:
        clip = work / "room_60s_854x480.mp4"
        frames = make_clip(clip, args.seconds)
        print(f"clip: {clip.name}, {frames} frames, {clip.stat().st_size / 1e6:.1f} MB; "
              f"load average at start {load_average()}")
        results = []
        if args.baseline:
            started = time.perf_counter()
            out = convert_video(clip, output=work / "baseline.mp4", progress=False)
            wall = time.perf_counter() - started
            print(json.dumps({"baseline_one_process": True, "frames": out.frames,
                              "wall_s": round(wall, 2),
                              "frames_per_second": round(out.frames / wall, 2)}))
        for n in args.workers:
            result = run_job(clip, n, work / f"w{n}", args.chunk_frames, args.overlap)
            results.append(result)
            print(json.dumps(result))
        one = next((r for r in results if r["workers"] == 1), None)
        if one is not None:
            print("estimate from the one-worker run: frames/s of one job on N machines")
            for chunk_frames in sorted({args.chunk_frames, 150, 100}, reverse=True):
                print(f"  chunks of {chunk_frames} frames:",
                      {m: round(estimate(one, m, chunk_frames, args.overlap), 1)
                       for m in (1, 2, 3, 6, 12, 18)})
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
