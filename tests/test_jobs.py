"""Jobs over HTTP on the real queue: a real ``redis-server`` on a free loopback port, two
real Celery workers (``python -m jobs worker``) and the matting service under gunicorn
(``python -m matting_api``), all as processes; no fake broker, nothing mocked.

A clip with sound goes through ``POST /jobs`` and comes back with every frame, its size,
frame rate, sound and sync; two workers share a clip's chunks and the joined alpha matte
has every frame once, in order, without a seam; a job is cancelled; a worker is killed
mid-job and the job completes on the other; the service is restarted and still knows its
jobs; bad uploads are 4xx JSON; without Redis, ``POST /jobs`` is a 503 that says how to
start one.

Small clips (360x240, the bundled ``person.mp4``), small chunks (30 frames) and a short
visibility timeout keep the whole file within a few minutes on the 2-core machine.
"""
from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
import requests

from core.video import VideoReader, convert_video
from core.video.chunks import split
from evaluation import clips as clip_files
from evaluation.clips import click_time, first_video_time
from evaluation.services import (
    free_port,
    redis_server_binary,
    start_redis,
    start_service,
    start_worker,
    stop,
    stop_worker,
    wait_healthy,
)

pytestmark = pytest.mark.skipif(redis_server_binary() is None,
                                reason="redis-server not installed (scripts/test.sh installs it)")

REPO = Path(__file__).resolve().parents[1]
PERSON = REPO / "samples" / "video" / "person.mp4"
ROOM = REPO / "samples" / "video" / "room.mp4"
FPS, RATE = 30, 48000
CLICK_AT = 2.0          # seconds into the clip: after the first cut (frame 30 = 1.0 s)
CHUNK, OVERLAP = 30, 16
VISIBILITY = 8          # seconds before a dead worker's task goes to another
TIMEOUT = 120


def write_clip(path: Path, frames: list[np.ndarray], click_at: float | None = CLICK_AT) -> None:
    """An H.264 clip of ``frames`` at 30 fps with AAC sound as long as the video: silence
    and a 2 ms click at ``click_at`` seconds."""
    seconds = len(frames) / FPS
    sound = (clip_files.click(seconds, click_at, rate=RATE) if click_at is not None
             else np.zeros(int(seconds * RATE), np.float32))
    clip_files.write_clip(path, frames, FPS, sound, rate=RATE)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """``short``: person.mp4 (109 frames, 3.6 s) with a click at 2 s; ``long``: it forwards
    and backwards, 218 frames; ``longer``: that three times, 654 frames."""
    folder = tmp_path_factory.mktemp("job-clips")
    with VideoReader(PERSON) as reader:
        frames = [f.image for f in reader]
    made = {"short": folder / "person_click.mp4", "long": folder / "person_long.mp4",
            "longer": folder / "person_longer.mp4"}
    write_clip(made["short"], frames)
    write_clip(made["long"], frames + frames[::-1], click_at=None)
    write_clip(made["longer"], (frames + frames[::-1]) * 3, click_at=None)
    return made


class Stack:
    """Redis, the workers and the matting service, and helpers to talk to them."""

    def __init__(self, folder: Path):
        import redis

        self.folder = folder
        self.redis_port = free_port()
        self.redis = start_redis(self.redis_port, folder / "redis")
        self.env = {"JOBS_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                    "JOBS_DIR": str(folder / "jobs"), "JOBS_CHUNK_FRAMES": str(CHUNK),
                    "JOBS_OVERLAP_FRAMES": str(OVERLAP), "JOBS_CHUNK_PHOTOS": "2",
                    "JOBS_VISIBILITY_TIMEOUT": str(VISIBILITY), "JOBS_CONCURRENCY": "1",
                    "MATTING_WORKERS": "1", "MATTING_WARMUP": "0"}
        self.client = redis.Redis(port=self.redis_port, decode_responses=True)
        self.workers = []
        self.service = None
        self.url = None

    def add_worker(self):
        index = len(self.workers)
        self.workers.append(start_worker(self.env, self.folder / f"worker{index}.log"))
        return self.workers[-1]

    def start_service(self):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.service = start_service("matting_api", port,
                                     ["--segmentation-url", "http://127.0.0.1:9"], self.env,
                                     self.folder / f"matting-{port}.log")
        wait_healthy(self.url, self.service)

    def wait_for_workers(self, count: int, timeout: float = 120) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = requests.get(self.url + "/health", timeout=10).json()["jobs"]["workers"]
            alive = [n for n in names if any(f"jobs{w.pid}@" in n for w in self.workers
                                             if w.poll() is None)]
            if len(alive) >= count:
                return alive
            time.sleep(0.3)
        raise TimeoutError(f"fewer than {count} workers came up; see {self.folder}/worker*.log")

    def submit(self, path: Path, field: str = "video", background=None, **data) -> requests.Response:
        """POST /jobs; a ``background`` Path goes as a file, any other value as a field."""
        files = {field: (path.name, path.read_bytes())}
        if isinstance(background, Path):
            files["background"] = (background.name, background.read_bytes())
        elif background is not None:
            data["background"] = background
        return requests.post(self.url + "/jobs", files=files, data=data, timeout=60)

    def state(self, job_id: str) -> dict:
        response = requests.get(f"{self.url}/jobs/{job_id}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, job_id: str, timeout: float = TIMEOUT, until=("done", "failed", "cancelled")):
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(job_id)
            seen.append(state)
            if state["state"] in until:
                return state, seen
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} still {seen[-1]} after {timeout} s")

    def close(self):
        if self.service is not None:
            stop(self.service)
        for worker in self.workers:
            stop_worker(worker)
        stop(self.redis)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jobs-stack")
    s = Stack(folder)
    try:
        s.add_worker()
        s.add_worker()
        s.start_service()
        s.wait_for_workers(2)
        yield s
    finally:
        s.close()


def download(stack: Stack, job_id: str, path: Path) -> Path:
    response = requests.get(f"{stack.url}/jobs/{job_id}/result", timeout=60)
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    return path


def video_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        times = [float(f.pts * f.time_base) for f in c.decode(v)]
        facts = {"frames": len(times), "size": (v.codec_context.width, v.codec_context.height),
                 "fps": float(v.average_rate), "times": times, "audio": None}
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            samples = sum(f.samples for f in c.decode(a))
            facts["audio"] = (a.codec_context.name, samples / a.codec_context.sample_rate)
    return facts


def alpha_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)]


# --------------------------------------------------------------------------- the tests


def test_a_clip_with_sound_goes_through(stack, clips, tmp_path):
    response = stack.submit(clips["short"], size="240x160", output="composite",
                            background=ROOM)  # a video under it, looped, timed by the clock
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert job["state"] == "queued" and job["output"]["filename"] == "person_click_composite.mp4"
    final, seen = stack.wait(job["id"])
    assert final["state"] == "done", final
    assert final["frames_done"] == final["frames_total"] == 109
    assert final["chunks"] == {"total": 4, "done": 4}
    assert final["frames_per_second"] > 0 and final["seconds_left"] == 0
    running = [s for s in seen if s["state"] == "running" and s["frames_total"]]
    for s in running:  # progress is reported as it goes, with a time left
        assert 0 <= s["frames_done"] <= 109
    facts = video_facts(download(stack, job["id"], tmp_path / "out.mp4"))
    assert facts["frames"] == 109 and facts["size"] == (240, 160) and facts["fps"] == FPS
    assert facts["times"] == pytest.approx([i / FPS for i in range(109)], abs=1e-3)
    codec, seconds = facts["audio"]
    assert codec == "aac" and seconds == pytest.approx(109 / FPS, abs=0.05)
    # The click is where it was, against the first frame, through 4 chunks and the join.
    when = click_time(tmp_path / "out.mp4") - first_video_time(tmp_path / "out.mp4")
    assert when == pytest.approx(CLICK_AT, abs=0.025)
    # Range requests: a download can resume.
    whole = (tmp_path / "out.mp4").read_bytes()
    part = requests.get(f"{stack.url}/jobs/{job['id']}/result", headers={"Range": "bytes=100-199"},
                        timeout=10)
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"


def test_two_workers_share_a_clip_and_the_joins_do_not_show(stack, clips, tmp_path):
    response = stack.submit(clips["long"], output="alpha")
    assert response.status_code == 202, response.text
    final, _ = stack.wait(response.json()["id"])
    assert final["state"] == "done", final
    chunks = split(218, CHUNK, OVERLAP)
    assert final["chunks"]["total"] == len(chunks) == 8 and len(final["workers"]) == 2
    joined_path = download(stack, final["id"], tmp_path / "joined.mp4")
    # The same clip converted whole, in one process, for reference.
    whole_path = tmp_path / "whole.mp4"
    convert_video(clips["long"], output=whole_path, output_type="alpha", progress=False)
    joined, whole = alpha_frames(joined_path), alpha_frames(whole_path)
    # Every frame once, in order: as many, at the same times, each the same picture.
    assert len(joined) == len(whole) == 218
    assert video_facts(joined_path)["times"] == video_facts(whole_path)["times"]
    differences = np.array([np.abs(a - b).mean() for a, b in zip(joined, whole)])
    assert differences.max() < 1.5, differences.round(2)  # encoder noise only (grey levels)
    # No seam: the alpha changes no more from the last frame of a chunk to the first of
    # the next than it does between other neighbouring frames.
    change = np.array([np.abs(joined[i] - joined[i - 1]).mean() for i in range(1, len(joined))])
    cuts = [c.start - 1 for c in chunks[1:]]  # change[i]: frame i -> i + 1
    elsewhere = np.delete(change, cuts)
    assert change[cuts].max() <= elsewhere.max(), (change[cuts].round(2), elsewhere.max())


def test_a_job_is_cancelled(stack, clips):
    response = stack.submit(clips["longer"], output="alpha")
    job_id = response.json()["id"]
    stack.wait(job_id, until=("running", "done"))
    cancelled = requests.delete(f"{stack.url}/jobs/{job_id}", timeout=10)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    time.sleep(1.5)  # workers look every half second
    frames = stack.state(job_id)["frames_done"]
    time.sleep(1.5)
    after = stack.state(job_id)
    assert after["state"] == "cancelled" and after["error"] == "cancelled by the client"
    assert after["frames_done"] == frames < 654  # nobody works on it any more
    result = requests.get(f"{stack.url}/jobs/{job_id}/result", timeout=10)
    assert result.status_code == 409 and result.json()["code"] == "job_cancelled"
    # The queued chunks are dropped as they come up, and the workers are free again.
    deadline = time.monotonic() + 30
    while requests.get(stack.url + "/health", timeout=10).json()["jobs"]["tasks_waiting"]:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    # Deleting a finished job removes it with its files.
    gone = requests.delete(f"{stack.url}/jobs/{job_id}", timeout=10)
    assert gone.status_code == 200 and gone.json()["state"] == "deleted"
    assert requests.get(f"{stack.url}/jobs/{job_id}", timeout=10).status_code == 404
    assert not (Path(stack.env["JOBS_DIR"]) / job_id).exists()


def test_a_zip_of_photos(stack, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(REPO / "samples" / "astronaut.jpg", "team/astronaut.jpg")
        archive.write(REPO / "samples" / "astronaut.jpg", "team/astronaut.png")  # same stem
        archive.writestr("broken.jpg", b"not a photo")
        archive.writestr("notes.txt", b"not a photo either, and not counted")
    (tmp_path / "photos.zip").write_bytes(buffer.getvalue())
    response = stack.submit(tmp_path / "photos.zip", field="photos", output="cutout",
                            matter="guided-filter", segmenter_mode="fast")
    assert response.status_code == 202, response.text
    final, _ = stack.wait(response.json()["id"])
    assert final["state"] == "done" and final["frames_total"] == 3, final
    assert [f["name"] for f in final["failed_items"]] == ["broken.jpg"]
    result = requests.get(f"{stack.url}/jobs/{final['id']}/result", timeout=10)
    assert result.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
        # Photos sharing a stem keep their whole name, as on the command line.
        assert sorted(archive.namelist()) == ["errors.json", "team/astronaut.jpg.png",
                                              "team/astronaut.png.png"]
        from PIL import Image

        cutout = Image.open(io.BytesIO(archive.read("team/astronaut.jpg.png")))
        assert cutout.mode == "RGBA" and cutout.size == (512, 512)
        assert json.loads(archive.read("errors.json"))[0]["name"] == "broken.jpg"


def test_a_failing_job_says_why(stack, clips):
    """A request the engine refuses only once it runs (MediaPipe's fast mode cannot tell
    people apart) fails the job with the engine's message."""
    job_id = stack.submit(clips["short"], max_people="1", segmenter_mode="fast").json()["id"]
    final, _ = stack.wait(job_id)
    assert final["state"] == "failed" and "max_people" in final["error"], final
    result = requests.get(f"{stack.url}/jobs/{job_id}/result", timeout=10)
    assert result.status_code == 409 and "max_people" in result.json()["error"]


def test_bad_uploads_are_4xx_json(stack, clips, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 5000)
    not_zip = tmp_path / "photos.zip"
    not_zip.write_bytes(b"PK nothing")
    empty_zip = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("readme.txt", "no photos")
    url = stack.url
    cases = [
        (requests.post(url + "/jobs", timeout=10), 400, "missing_field"),
        (stack.submit(garbage), 400, "invalid_video"),
        (stack.submit(not_zip, field="photos"), 400, "invalid_zip"),
        (stack.submit(empty_zip, field="photos"), 400, "invalid_zip"),
        (stack.submit(clips["short"], output="cutout"), 400, "invalid_parameter"),
        (stack.submit(clips["short"], size="big"), 400, "invalid_parameter"),
        (stack.submit(clips["short"], colour="red"), 400, "unknown_parameter"),
        (stack.submit(clips["short"], background="transparent"), 400, "invalid_parameter"),
        (stack.submit(clips["short"], background=garbage), 400, "invalid_video"),
        (stack.submit(clips["short"], output="transparent", format="mp4"), 400, "invalid_parameter"),
        (stack.submit(clips["short"], video="clip.mp4"), 400, "not_a_file"),
        (requests.get(url + "/jobs/" + "0" * 32, timeout=10), 404, "job_not_found"),
        (requests.get(url + "/jobs/nonsense/result", timeout=10), 404, "job_not_found"),
        (requests.delete(url + "/jobs/nonsense", timeout=10), 404, "job_not_found"),
    ]
    for response, status, code in cases:
        body = response.json()
        assert (response.status_code, body["code"]) == (status, code), body
        assert body["error"] and body["request_id"] == response.headers["X-Request-Id"]
        assert_no_server_details(stack, body["error"])
    # Nothing was left behind by the refused uploads.
    assert not [p for p in Path(stack.env["JOBS_DIR"]).iterdir()
                if not stack.client.exists(f"pm:job:{p.name}")]


def assert_no_server_details(stack: Stack, message: str) -> None:
    """A message for the client: no path on the server, no errno."""
    jobs_dir = stack.env["JOBS_DIR"]
    assert jobs_dir not in message and "/input" not in message, message
    assert "Errno" not in message and not re.search(r"\bError -?\d+", message), message


def test_uploads_are_checked_by_their_content_not_their_name(stack, clips, tmp_path):
    """A text file named like a photo or a video is no video, whatever its name (FFmpeg
    opens a .jpg name as an image sequence of 0x0 frames): 400 at once, nothing queued; a
    real clip or zip under an odd name is taken."""
    text = b"this is a text file, not a video\n" * 10
    for name in ("text.jpg", "text.mp4", "text.mov", "text"):
        (tmp_path / name).write_bytes(text)
        response = stack.submit(tmp_path / name)
        body = response.json()
        assert (response.status_code, body["code"]) == (400, "invalid_video"), body
        assert f"video '{name}'" in body["error"] and "send a video file" in body["error"], body
    # A zip is a zip by its content: text named .zip is refused, a real zip named .jpg taken.
    (tmp_path / "photos.zip").write_bytes(text)
    response = stack.submit(tmp_path / "photos.zip", field="photos")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_zip")
    assert "photos zip 'photos.zip' is not a zip file" in response.json()["error"]
    # A background is an image or a video by its content too.
    response = stack.submit(clips["short"], background=tmp_path / "text.jpg")
    body = response.json()
    assert (response.status_code, body["code"]) == (400, "invalid_image"), body
    assert "background 'text.jpg' is neither an image nor a video" in body["error"]
    assert not [p for p in Path(stack.env["JOBS_DIR"]).iterdir()
                if not stack.client.exists(f"pm:job:{p.name}")]
    # The real thing under misleading names: a clip named .jpg, a photo named .mp4 as its
    # background (looked at as an image: its file is renamed so the workers read it so).
    clip = tmp_path / "clip.jpg"
    clip.write_bytes(clips["short"].read_bytes())
    photo = tmp_path / "room.mp4"
    photo.write_bytes((REPO / "samples" / "astronaut.jpg").read_bytes())
    response = stack.submit(clip, output="composite", max_frames="10", background=photo)
    assert response.status_code == 202, response.text
    final, _ = stack.wait(response.json()["id"])
    assert final["state"] == "done" and final["frames_total"] == 10, final
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(REPO / "samples" / "astronaut.jpg", "astronaut.jpg")
    (tmp_path / "photos.jpg").write_bytes(buffer.getvalue())
    response = stack.submit(tmp_path / "photos.jpg", field="photos", output="alpha",
                            matter="guided-filter", segmenter_mode="fast")
    assert response.status_code == 202, response.text
    final, _ = stack.wait(response.json()["id"])
    assert final["state"] == "done" and final["frames_total"] == 1, final


def test_refusals_name_the_upload_never_the_server_path(stack, tmp_path):
    """What went wrong is said of the upload as the client named it; the server's paths
    and FFmpeg's error numbers stay in its log."""
    garbage = tmp_path / "holiday clip.mp4"
    garbage.write_bytes(b"this is a text file, not a video\n" * 10)
    response = stack.submit(garbage)
    body = response.json()
    assert (response.status_code, body["code"]) == (400, "invalid_video"), body
    assert body["error"].startswith("the video 'holiday clip.mp4' is not a video FFmpeg can "
                                    "read (invalid data found when processing input)"), body
    assert_no_server_details(stack, body["error"])
    # Nor does a job that fails on a worker show the workers' paths (the engine's message
    # about the upload names it as the client knows it).
    from core.video.errors import VideoError
    from jobs import work
    from jobs.store import JobStore

    store = JobStore(stack.env["JOBS_REDIS_URL"], stack.env["JOBS_DIR"])
    job_id = "e" * 32
    store.folder_of(job_id).mkdir()
    store.create(job_id, "video", {"background_file": "background.mp4"}, "clip.mp4", "input.mp4")
    ctx = work.Context({}, store, lambda *_: None)
    folder = store.folder_of(job_id)
    work.fail(ctx, job_id, VideoError(
        f"cannot open {folder / 'input.mp4'} as a video: [Errno 1094995529] Invalid data "
        f"found when processing input: '{folder / 'input.mp4'}'; background "
        f"{folder / 'background.mp4'}, chunk {folder / 'chunks' / '00001.mp4'}"))
    error = stack.state(job_id)["error"]
    assert error == ("cannot open the uploaded video 'clip.mp4' as a video: Invalid data found "
                     "when processing input: the uploaded video 'clip.mp4'; background the "
                     "uploaded background, chunk chunks/00001.mp4"), error
    assert_no_server_details(stack, error)
    store.delete(job_id)


def test_an_empty_upload_says_so(stack, tmp_path):
    for field, name in (("video", "x.mp4"), ("photos", "photos.zip")):
        (tmp_path / name).write_bytes(b"")
        response = stack.submit(tmp_path / name, field=field)
        body = response.json()
        assert (response.status_code, body["code"]) == (400, "empty_upload"), body
        assert body["error"].startswith(f"the uploaded file '{name}' ({field}) is empty"), body
    (tmp_path / "bg.jpg").write_bytes(b"")
    response = stack.submit(REPO / "samples" / "video" / "person.mp4", background=tmp_path / "bg.jpg")
    assert (response.status_code, response.json()["code"]) == (400, "empty_upload")
    assert "'bg.jpg' (background) is empty" in response.json()["error"]


def test_people_selection_on_a_job(stack, clips):
    """people= is taken as on /matte (the README says so), checked before anything is
    queued, and applied to every frame."""
    response = stack.submit(clips["short"], output="alpha", max_frames="10", people="largest")
    assert response.status_code == 202, response.text
    final, _ = stack.wait(response.json()["id"])
    assert final["state"] == "done" and final["frames_total"] == 10, final
    response = stack.submit(clips["short"], people="tallest")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_parameter")
    assert "people must be one of" in response.json()["error"]


def test_the_readme_lists_every_jobs_field():
    """The README's jobs API section names every field POST /jobs takes, and refuses none
    of them in words."""
    from jobs.params import FIELDS

    readme = (REPO / "README.md").read_text()
    section = readme.split("### Jobs (matting service)", 1)[1].split("\n### ", 1)[0]
    from service_common.openapi import trimap_fields

    trimap = {f.name for f in trimap_fields()}  # "the trimap fields", listed with /matte's
    missing = [f.name for f in FIELDS if f"`{f.name}`" not in section and f.name not in trimap]
    assert not missing, missing
    assert "not in the engine yet" not in section


def test_without_redis_every_jobs_endpoint_is_503(tmp_path):
    """The real service, its Redis gone after a job was made: looking a job up, its result
    or cancelling it says the store is unreachable and how to start it, for any id; never
    that the job does not exist."""
    redis_port = free_port()
    redis = start_redis(redis_port, tmp_path / "redis")
    url = f"redis://127.0.0.1:{redis_port}/0"
    env = {"JOBS_REDIS_URL": url, "JOBS_DIR": str(tmp_path / "jobs"), "MATTING_WORKERS": "1",
           "MATTING_WARMUP": "0"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = start_service("matting_api", port, ["--segmentation-url", "http://127.0.0.1:9"],
                            env, tmp_path / "matting.log")
    try:
        wait_healthy(base, service)
        with open(PERSON, "rb") as f:
            made = requests.post(base + "/jobs", files={"video": ("clip.mp4", f)}, timeout=60)
        assert made.status_code == 202, made.text  # no worker: it stays queued
        job_id = made.json()["id"]
        stop(redis)
        for method, path in (("GET", f"/jobs/{job_id}"), ("GET", f"/jobs/{job_id}/result"),
                             ("DELETE", f"/jobs/{job_id}"), ("GET", "/jobs/" + "0" * 32),
                             ("GET", "/jobs/3f2c"), ("GET", "/jobs/3f2c/result"),
                             ("DELETE", "/jobs/3f2c")):
            response = requests.request(method, base + path, timeout=30)
            body = response.json()
            assert (response.status_code, body["code"]) == (503, "queue_unavailable"), (path, body)
            assert f"Redis at {url}" in body["error"] and "scripts/worker.sh" in body["error"]
            assert "JOBS_REDIS_URL" in body["error"] and response.headers["Retry-After"]
            assert "Error 111" not in body["error"], body
        with open(PERSON, "rb") as f:
            again = requests.post(base + "/jobs", files={"video": ("clip.mp4", f)}, timeout=60)
        assert (again.status_code, again.json()["code"]) == (503, "queue_unavailable")
    finally:
        stop(service)
        stop(redis)


def test_the_jobs_endpoints_answer_by_the_document(stack):
    from tests.api_checks import check_every_operation

    checked = check_every_operation(stack.url, only=lambda label: "/jobs" in label, examples=15)
    assert {"POST /jobs", "GET /jobs/{job_id}", "DELETE /jobs/{job_id}",
            "GET /jobs/{job_id}/result"} <= set(checked)


def test_finished_jobs_are_removed_after_the_keep_time(stack, clips):
    from jobs.store import JobStore

    job_id = stack.submit(clips["short"], output="alpha", max_frames="10").json()["id"]
    final, _ = stack.wait(job_id)
    from datetime import datetime

    kept = datetime.fromisoformat(final["expires"]) - datetime.fromisoformat(final["finished"])
    assert kept.total_seconds() == pytest.approx(24 * 3600, abs=2)  # JOBS_KEEP_HOURS (default)
    folder = Path(stack.env["JOBS_DIR"])
    deadline = time.monotonic() + 10  # the worker tidies up right after marking it done
    while [p.name for p in (folder / job_id).iterdir()] != ["result.mp4"]:  # only the result
        assert time.monotonic() < deadline, list((folder / job_id).iterdir())
        time.sleep(0.1)
    orphan = folder / ("f" * 32)  # a folder no record owns (its record expired in Redis)
    orphan.mkdir()
    store = JobStore(stack.env["JOBS_REDIS_URL"], folder, keep_hours=0)
    store.update(job_id, expires=time.time() - 1)  # as if the keep time had passed
    assert store.sweep(force=True) == 2
    assert requests.get(f"{stack.url}/jobs/{job_id}", timeout=10).status_code == 404
    assert not (folder / job_id).exists() and not orphan.exists()


def test_a_restarted_service_knows_every_job(stack, clips):
    job_id = stack.submit(clips["short"], output="alpha", max_frames="40").json()["id"]
    final, _ = stack.wait(job_id)
    assert final["state"] == "done" and final["frames_total"] == 40
    old_url = stack.url
    stop(stack.service)
    with pytest.raises(requests.ConnectionError):
        requests.get(old_url + "/health", timeout=5)
    stack.start_service()
    again = stack.state(job_id)
    assert {k: again[k] for k in ("state", "frames_done", "frames_total", "finished")} == \
        {k: final[k] for k in ("state", "frames_done", "frames_total", "finished")}
    assert requests.get(f"{stack.url}/jobs/{job_id}/result", timeout=10).status_code == 200


def test_a_killed_worker_leaves_its_chunk_to_the_other(stack, clips, tmp_path):
    job_id = stack.submit(clips["longer"], output="alpha").json()["id"]
    # Wait until a chunk is being worked on, and kill its worker (and its pool process),
    # as when a machine goes away: nothing is acknowledged, nothing said.
    deadline = time.monotonic() + 60
    victim = None
    while victim is None:
        assert time.monotonic() < deadline, "no chunk was started"
        busy = stack.client.hgetall(f"pm:job:{job_id}:workers")
        done = stack.client.smembers(f"pm:job:{job_id}:done")
        name = next((n for chunk, n in busy.items() if chunk not in done), None)
        victim = next((w for w in stack.workers if name and name.startswith(f"jobs{w.pid}@")), None)
        time.sleep(0.05)
    stop_worker(victim, kill=True)
    busy = stack.client.hgetall(f"pm:job:{job_id}:workers")
    done = stack.client.smembers(f"pm:job:{job_id}:done")
    orphans = [c for c, n in busy.items() if n == name and c not in done]
    assert orphans, "the worker was killed between two chunks; nothing to take over"
    final, _ = stack.wait(job_id, timeout=TIMEOUT)
    assert final["state"] == "done", final
    assert final["frames_done"] == final["frames_total"] == 654
    # The killed worker's chunk was started again, by the survivor, and finished.
    survivor = next(w for w in stack.workers if w.poll() is None)
    for chunk in orphans:
        assert stack.client.hget(f"pm:job:{job_id}:workers", chunk).startswith(f"jobs{survivor.pid}@")
        assert int(stack.client.hget(f"pm:job:{job_id}:attempts", chunk)) == 2
    facts = video_facts(download(stack, job_id, tmp_path / "after_kill.mp4"))
    assert facts["frames"] == 654
    assert facts["times"] == pytest.approx([i / FPS for i in range(654)], abs=1e-3)


def test_without_redis_post_jobs_is_503_with_how_to_start_it(tmp_path, clips):
    import matting_api

    app = matting_api.create_app({"TESTING": True, "WARMUP": 0, "JOBS_DIR": str(tmp_path),
                                  "JOBS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    client = app.test_client()
    with open(clips["short"], "rb") as f:
        response = client.post("/jobs", data={"video": (f, "clip.mp4")})
    assert response.status_code == 503 and response.json["code"] == "queue_unavailable"
    assert "scripts/worker.sh" in response.json["error"] and response.headers["Retry-After"]
    assert client.get("/health").json["jobs"]["queue"] == "unreachable"
    assert list(tmp_path.iterdir()) == []  # the upload was not kept
