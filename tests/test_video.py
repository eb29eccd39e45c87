"""Video: the command on a short real clip (every output type, size, frame rate, audio),
backgrounds looping, timestamps, Ctrl-C, temporal smoothing, and the notebook run headless.

The clips are the bundled CC BY samples (samples/video/); the foreground with sound is made
here with PyAV (the samples have none): the first second of ``person.mp4`` plus an AAC
sine tone.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from core import video
from core.temporal import TemporalSmoother
from core.video import (
    BackgroundSource,
    EncodedVideoWriter,
    VideoReader,
    convert_video,
    main,
    probe,
    video_format,
)
from evaluation import clips
from evaluation.metrics import flicker

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "video"
PERSON, ROOM, ROOM_JPG = SAMPLES / "person.mp4", SAMPLES / "room.mp4", SAMPLES / "room.jpg"
FRAMES = 24          # frames in the test foreground (0.8 s at 30 fps)
SIZE = (160, 240)    # its height, width


def write_clip(path: Path, images, fps=30, tone_hz: float | None = 440.0, audio_codec="aac",
               fmt=None) -> None:
    """An H.264 clip of ``images`` (uint8 RGB) with a stereo sine tone as long as the video."""
    sound = None
    if tone_hz:
        wave = clips.tone(len(images) / fps, tone_hz)
        sound = np.stack([wave, wave])
    clips.write_clip(path, images, fps, sound, audio_codec=audio_codec, fmt=fmt)


@pytest.fixture(scope="module")
def person_frames():
    with VideoReader(PERSON, size=SIZE, max_frames=FRAMES) as reader:
        return [f.image for f in reader]


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory, person_frames):
    path = tmp_path_factory.mktemp("clips") / "person_tone.mp4"
    write_clip(path, person_frames)
    return path


@pytest.fixture(scope="module")
def backends():
    from core.matters import create_matter
    from core.segmenters import create_segmenter

    return create_segmenter("mediapipe", mode="fast"), create_matter("guided-filter")


def decoded(path: Path, fmt="rgb24", codec=None) -> list[np.ndarray]:
    """Every frame of a file's video stream (``codec`` forces a decoder: libvpx-vp9 keeps
    VP9's alpha)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        if codec is None:
            return [f.to_ndarray(format=fmt) for f in c.decode(stream)]
        ctx = av.CodecContext.create(codec, "r")
        frames = []
        for packet in c.demux(stream):
            frames += [f.to_ndarray(format=fmt) for f in ctx.decode(packet)]
        return frames


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        return sum(f.samples for f in c.decode(stream)) / stream.codec_context.sample_rate


# ------------------------------------------------------------------ the command


OUTPUTS = [
    # output type, file name, extra flags, video codec, audio codec
    ("composite", "out.mp4", ["-b", str(ROOM)], "h264", "aac"),
    ("transparent", "out.webm", [], "vp9", "opus"),
    ("transparent", "out.mov", ["--format", "mov"], "prores", "aac"),
    ("alpha", "alpha.mp4", [], "h264", "aac"),
]


@pytest.mark.parametrize("output_type,name,flags,vcodec,acodec", OUTPUTS,
                         ids=[f"{o[0]}-{o[1]}" for o in OUTPUTS])
def test_command_writes_each_output_type(tmp_path, clip_with_audio, output_type, name, flags,
                                         vcodec, acodec):
    out = tmp_path / name
    assert main([str(clip_with_audio), "-o", str(out), "-t", output_type, "-q", *flags]) == 0
    info = probe(out)
    assert (info.width, info.height) == (SIZE[1], SIZE[0])
    assert info.codec == vcodec
    assert float(info.fps) == pytest.approx(30, abs=0.05)
    assert info.audio is not None and info.audio.codec == acodec
    assert audio_seconds(out) == pytest.approx(FRAMES / 30, abs=0.05)
    if output_type == "transparent" and vcodec == "vp9":
        frames = decoded(out, "rgba", codec="libvpx-vp9")
    elif output_type == "transparent":
        frames = decoded(out, "rgba")
    elif output_type == "alpha":
        frames = decoded(out, "gray")
    else:
        frames = decoded(out)
    assert len(frames) == FRAMES
    assert frames[0].shape[:2] == SIZE
    if output_type in ("transparent", "alpha"):
        alpha = np.stack([f[..., 3] if f.ndim == 3 else f for f in frames])
        # The person is opaque, the room around them transparent.
        assert (alpha > 250).mean() > 0.1 and (alpha < 5).mean() > 0.3


def test_command_writes_a_png_sequence(tmp_path, clip_with_audio):
    out = tmp_path / "frames"
    assert main([str(clip_with_audio), "-o", str(out), "-t", "png", "-q"]) == 0
    pngs = sorted(out.glob("frame_*.png"))
    assert len(pngs) == FRAMES
    from PIL import Image

    with Image.open(pngs[0]) as img:
        assert img.mode == "RGBA" and img.size == (SIZE[1], SIZE[0])
    assert (out / "audio.mka").is_file()
    assert audio_seconds(out / "audio.mka") == pytest.approx(FRAMES / 30, abs=0.05)


def test_command_as_a_process_resizes_and_keeps_timestamps(tmp_path, clip_with_audio):
    out = tmp_path / "small.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "core.video", str(clip_with_audio), "--background", str(ROOM_JPG),
         "-o", str(out), "--size", "120x80", "--fit", "contain", "--no-smoothing", "-q"],
        cwd=REPO, capture_output=True, text=True,
        timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "24 frames, 120x80, 30 fps, audio: remux aac" in proc.stdout
    info = probe(out)
    assert (info.width, info.height, info.frame_count) == (120, 80, FRAMES)
    assert frame_times(out) == pytest.approx(frame_times(clip_with_audio), abs=1e-3)


def test_no_audio_in_no_audio_out(tmp_path, backends):
    out = tmp_path / "silent.mp4"
    result = convert_video(PERSON, background="#0000ff", output=out, segmenter=backends[0],
                           matter=backends[1], max_frames=10, progress=False)
    assert result.frames == 10 and result.audio is None
    assert probe(out).audio is None


def test_audio_is_transcoded_where_the_container_cannot_hold_it(tmp_path, person_frames, backends):
    # MP3 audio in Matroska, written to WebM: VP9 + Opus.
    source = tmp_path / "mp3.mkv"
    write_clip(source, person_frames[:12], audio_codec="libmp3lame", fmt="matroska")
    out = tmp_path / "t.webm"
    result = convert_video(source, output=out, output_type="transparent", segmenter=backends[0],
                           matter=backends[1], progress=False)
    assert result.audio.startswith("transcode mp3")
    assert probe(out).audio.codec == "opus"


def test_errors_name_the_problem(tmp_path, clip_with_audio):
    assert main([str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "x.mp4"), "-q"]) == 2
    assert main([str(clip_with_audio), "-o", str(tmp_path / "x.avi"), "-q"]) == 2
    with pytest.raises(video.VideoError, match="transparent video needs"):
        video_format("transparent", ".mp4")
    with pytest.raises(ValueError, match="not a colour"):
        BackgroundSource("no-such-colour", SIZE)
    with pytest.raises(video.VideoError, match="not found"):
        BackgroundSource(str(tmp_path / "gone.mp4"), SIZE)
    assert video.parse_size("360x240") == (240, 360)
    assert video.parse_size("320", (480, 640)) == (240, 320)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        video.parse_size("big")


# ------------------------------------------------------------------ backgrounds


def test_background_video_loops_by_time(tmp_path):
    # Five solid frames at 10 fps (0.5 s): grey levels 0, 50, 100, 150, 200.
    path = tmp_path / "levels.mp4"
    images = [np.full((32, 48, 3), 50 * i, np.uint8) for i in range(5)]
    write_clip(path, images, fps=10, tone_hz=None)
    source = BackgroundSource(str(path), (32, 48))

    def level(t):
        return round(float(source.frame_at(t).mean()) * 255 / 50)

    assert [level(t) for t in (0.0, 0.12, 0.25, 0.49)] == [0, 1, 2, 4]
    # Past the end it starts again (0.5 s period), from memory or by decoding anew.
    assert [level(t) for t in (0.5, 0.75, 1.41, 2.0)] == [0, 2, 4, 0]
    fresh = BackgroundSource(str(path), (32, 48))
    fresh.CACHE_BYTES = 0
    assert [round(float(fresh.frame_at(t).mean()) * 255 / 50) for t in (0.3, 0.6, 0.1, 0.95)] \
        == [3, 1, 1, 4]
    source.close()
    fresh.close()


def test_background_specs(tmp_path):
    image = np.random.default_rng(0).random(SIZE + (3,), dtype=np.float32)
    assert BackgroundSource("#ff0000", SIZE).frame_at(0.0, image)[0, 0].tolist() == [1, 0, 0]
    blurred = BackgroundSource("blur", SIZE).frame_at(0.0, image)
    assert blurred.shape == SIZE + (3,) and blurred.std() < image.std()
    still = BackgroundSource(str(ROOM_JPG), SIZE, "contain").frame_at(3.0)
    assert still.shape == SIZE + (3,) and still[0].max() == 0  # contain: black bars on top


# ------------------------------------------------------------------ Ctrl-C


def test_interrupt_leaves_a_playable_partial_file(tmp_path, clip_with_audio, backends, caplog):
    out = tmp_path / "partial.mp4"

    def stop_at_ten(index, _frame):
        if index == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), caplog.at_level("WARNING", logger="core.video"):
        convert_video(clip_with_audio, background=str(ROOM), output=out, segmenter=backends[0],
                      matter=backends[1], progress=False, on_frame=stop_at_ten)
    assert "interrupted" in caplog.text and "plays as is" in caplog.text
    frames = decoded(out)
    assert len(frames) == 10
    assert audio_seconds(out) == pytest.approx(10 / 30, abs=0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_ctrl_c_on_the_command(tmp_path, person_frames):
    # A long clip and the slow closed-form matter, so the signal lands mid-run: it is sent
    # once the bar shows 3 frames or more but under a quarter of the clip.
    frames = person_frames * 16
    source = tmp_path / "long.mp4"
    write_clip(source, frames)
    out = tmp_path / "partial.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.video", str(source), "-o", str(out), "--matter", "closed-form"],
        cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        # A shell ignores SIGINT in jobs it starts in the background, the child inherits
        # that and Python then installs no KeyboardInterrupt handler: restore the default
        # so the test does not depend on how pytest was started.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []

    def watch():
        seen.append(proc.stderr.read())

    progress = re.compile(rf"\b(\d+)/{len(frames)}\b")

    def early(text):
        counts = [int(c) for c in progress.findall(text)]
        return bool(counts) and 3 <= counts[-1] < len(frames) // 4

    buffer = ""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        chunk = proc.stderr.read(64) if proc.poll() is None else ""
        if not chunk:
            break
        buffer += chunk
        if early(buffer):
            break
    assert early(buffer), f"no early progress seen: {buffer[-500:]}"
    proc.send_signal(signal.SIGINT)
    reader = threading.Thread(target=watch)
    reader.start()
    assert proc.wait(timeout=60) == 130
    reader.join(timeout=10)
    assert "interrupted" in seen[0]
    n = len(decoded(out))
    assert 3 <= n < len(frames)
    assert probe(out).audio is not None


# ------------------------------------------------------------------ smoothing


def test_smoother_follows_motion_and_settles_still_pixels():
    smoother = TemporalSmoother(still_rate=0.25, low=3, high=12)
    image = np.zeros((8, 8, 3), np.uint8)
    assert smoother.observe(image) is None
    moved = image.copy()
    moved[:, 4:] = 200
    rate = smoother.observe(moved)
    assert rate[:, :2].max() == pytest.approx(0.25) and rate[:, 6:].min() == pytest.approx(1.0)
    # A small change (the segmenter's tremble): a quarter of it where the input is still.
    previous, current = np.zeros((8, 8), np.float32), np.full((8, 8), 0.2, np.float32)
    blended = smoother.blend(previous, current)
    assert blended[0, 0] == pytest.approx(0.05) and blended[0, 7] == pytest.approx(0.2)
    # A jump of the map itself right beside where the input moved (something moving over a
    # background of nearly its own colour): followed at once; far from any motion: averaged.
    big = np.zeros((8, 64), np.float32)
    smoother.observe(np.zeros((8, 64, 3), np.uint8))
    moved = np.zeros((8, 64, 3), np.uint8)
    moved[:, 60:] = 200
    smoother.observe(moved)
    blended = smoother.blend(big, np.ones((8, 64), np.float32))
    assert blended[0, 57] == pytest.approx(1.0) and blended[0, 0] == pytest.approx(0.25)


def test_smoothing_reduces_flicker_on_a_real_clip(backends, person_frames):
    pipeline = video.video_pipeline(*backends)

    def mattes(smoothing):
        state = pipeline.new_video(smoothing)
        return [pipeline.run(image, state=state).alpha.copy() for image in person_frames]

    raw, smooth = mattes(False), mattes(True)
    off, on = flicker(person_frames, raw, raw), flicker(person_frames, smooth, raw)
    assert on["edge_pixels"] > 100
    assert on["edge"] < 0.8 * off["edge"]
    assert on["still"] < off["still"]


def test_writer_rejects_frames_of_the_wrong_shape(tmp_path):
    fmt = video_format("composite", ".mp4")
    with EncodedVideoWriter(tmp_path / "w.mp4", fmt, (16, 16), Fraction(25)) as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(ValueError, match="16x16"):
            writer.write(np.zeros((8, 16, 3), np.uint8))
    with pytest.raises(video.VideoError, match="even"):
        EncodedVideoWriter(tmp_path / "odd.mp4", fmt, (15, 16), Fraction(25))


# ------------------------------------------------------------------ the notebook


def test_notebook_runs_headless(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(REPO / "frienvengers.ipynb", as_version=4)
    params = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook needs one cell tagged 'parameters'"
    out = tmp_path / "notebook.mp4"
    params[0].source += (f"\nMAX_FRAMES = 20\nPREVIEW_FRAME = 5\nOUTPUT = {str(out)!r}\n"
                         "USE_SERVICES = False\n")
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    info = probe(out)
    assert (info.width, info.height) == (360, 240)
    assert float(info.fps) == pytest.approx(30, abs=0.05)
    assert len(decoded(out)) == 20
    images = [o for c in notebook.cells for o in c.get("outputs", [])
              if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) >= 3  # inputs, the step-by-step figure, the preview frame


def test_notebook_through_the_services(tmp_path, services):
    """The notebook's optional path: the same pipeline with the segmentation service as its
    person source (each frame over HTTP)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(REPO / "frienvengers.ipynb", as_version=4)
    params = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    out = tmp_path / "notebook.mp4"
    params.source += (f"\nMAX_FRAMES = 4\nPREVIEW_FRAME = 2\nOUTPUT = {str(out)!r}\n"
                      f"USE_SERVICES = True\nSEGMENTATION_URL = {services.segmentation!r}\n")
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
    through_service = tmp_path / "notebook_service.mp4"
    info = probe(through_service)
    assert (info.width, info.height) == (360, 240)
    remote, local = decoded(through_service), decoded(out)
    assert len(remote) == len(local) == 4
    # Another segmenter behind the service (MediaPipe's accurate mode) and its photo band,
    # the same person over the same room: the two composites differ only at the edges.
    difference = np.abs(remote[2].astype(int) - local[2]).mean(axis=2)
    assert (difference > 40).mean() < 0.05, f"{(difference > 40).mean():.3f} of pixels differ"


def test_playlists_that_open_other_files_are_refused(tmp_path):
    """An HLS playlist naming a file on this machine would make FFmpeg read that file: a
    video (an upload to the jobs API, say) is read with real container formats only."""
    from core.video.errors import VideoError
    from core.video.reader import probe

    playlist = tmp_path / "clip.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                        f"{PERSON}\n#EXT-X-ENDLIST\n")
    with pytest.raises(VideoError, match="cannot open"):
        probe(playlist)
    assert probe(PERSON).frame_count > 0
