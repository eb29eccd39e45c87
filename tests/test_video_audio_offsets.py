"""Audio that starts later or earlier than the video (camera MOVs with PCM, MP4 edit
lists, MKV) stays in sync after conversion, within one audio frame, in every output
container (MP4, MOV, MKV, WebM, and the PNG sequence's ``audio.mka``), whether the audio is
remuxed or transcoded (AAC, Opus).

The clips are made here with PyAV: a short click in the sound at a known time of the video
timeline, the audio stream starting 0.25 s after or before the first video frame. After
conversion the click is found in the output's decoded sound and timed against the
output's first video frame; ``data/camera_audio_starts_late.mov`` is the user-reported
case (PCM starting 0.25 s late, which lost its offset when transcoded).
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from core.video import convert_video
from evaluation import clips

CASE = Path(__file__).parent / "data" / "camera_audio_starts_late.mov"
FPS, FRAMES, SIZE = 30, 30, (64, 96)   # 1 s of video, height x width
RATE = 48000
CLICK_AT = 0.6                          # seconds on the video timeline
TOLERANCE = 0.025


def write_clip(path: Path, audio_offset: float, audio_codec: str, fmt: str | None = None,
               click_at: float = CLICK_AT) -> None:
    """A 1 s grey H.264 clip whose audio (silence and a 2 ms click at ``click_at`` seconds of
    the video timeline) starts ``audio_offset`` seconds after the first frame (negative:
    before it). The audio lasts from its start to 0.2 s past the video's end."""
    video_start = max(-audio_offset, 0.0)           # early audio: the video starts late
    audio_start = max(audio_offset, 0.0)
    first = round(video_start * FPS)
    video_start = first / FPS  # a whole frame, so the click is where we say
    frames = [np.full(SIZE + (3,), 90 + i, np.uint8) for i in range(FRAMES)]
    # The sound from audio_start to the video's end + 0.2 s, on the file's clock.
    sound = clips.click(video_start + FRAMES / FPS + 0.2 - audio_start,
                        video_start + click_at - audio_start, rate=RATE)
    clips.write_clip(path, frames, FPS, sound, rate=RATE, audio_codec=audio_codec, fmt=fmt,
                     first_frame=first, audio_start=audio_start)


first_video_time, click_time = clips.first_video_time, clips.click_time


SOURCES = {  # name: (suffix, PyAV format, audio codec)
    "mov-pcm": (".mov", None, "pcm_s16le"),     # camera MOV
    "mp4-aac": (".mp4", None, "aac"),           # phone MP4, edit list
    "mkv-opus": (".mkv", "matroska", "libopus"),
}
OUTPUTS = {  # name: (output file or folder, output type)
    "mp4": ("out.mp4", "composite"), "mov": ("out.mov", "composite"),
    "mkv": ("out.mkv", "composite"), "webm": ("out.webm", "composite"),
    "png": ("frames", "png"),
}


@pytest.fixture(scope="module")
def backends():
    from core.matters import create_matter
    from core.segmenters import create_segmenter

    return create_segmenter("mediapipe", mode="fast"), create_matter("guided-filter")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("offset-clips")
    made = {}
    for name, (suffix, fmt, codec) in SOURCES.items():
        for offset in (0.25, -0.25):
            path = folder / f"{name}_{offset:+.2f}{suffix}"
            write_clip(path, offset, codec, fmt)
            made[name, offset] = path
    return made


def converted_click(source: Path, out: Path, output_type: str, backends) -> tuple[float, str]:
    """Convert ``source`` and time the click in the output against its first frame."""
    result = convert_video(source, output=out, output_type=output_type, segmenter=backends[0],
                           matter=backends[1], progress=False)
    if output_type == "png":  # frame_000000.png is time 0 of audio.mka
        return click_time(out / "audio.mka"), result.audio
    return click_time(out) - first_video_time(out), result.audio


@pytest.mark.parametrize("output", list(OUTPUTS))
@pytest.mark.parametrize("offset", [0.25, -0.25], ids=["audio-late", "audio-early"])
@pytest.mark.parametrize("source", list(SOURCES))
def test_click_stays_in_sync(tmp_path, sources, backends, source, offset, output):
    path = sources[source, offset]
    assert click_time(path) - first_video_time(path) == pytest.approx(CLICK_AT, abs=0.003)
    name, output_type = OUTPUTS[output]
    when, mode = converted_click(path, tmp_path / name, output_type, backends)
    assert mode is not None
    assert when == pytest.approx(CLICK_AT, abs=TOLERANCE), f"{mode}: click at {when:.4f} s"


@pytest.mark.parametrize("output", list(OUTPUTS))
def test_camera_case(tmp_path, backends, output):
    """The user's camera MOV: PCM starting 0.25 s after the picture, a 50 ms beep at 1.5 s
    of the video timeline (transcoded to AAC in MP4 and to Opus in WebM, remuxed
    elsewhere): the beep stays at 1.5 s (before: 1.25 s when transcoded)."""
    with av.open(str(CASE)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        offset = float(audio.start_time * audio.time_base - video.start_time * video.time_base)
    assert offset == pytest.approx(0.25)
    beep = click_time(CASE) - first_video_time(CASE)
    assert beep == pytest.approx(1.5, abs=0.002)
    name, output_type = OUTPUTS[output]
    out = tmp_path / name
    result = convert_video(CASE, output=out, output_type=output_type, segmenter=backends[0],
                           matter=backends[1], progress=False, max_frames=60)
    assert result.audio.startswith("transcode" if output in ("mp4", "webm") else "remux")
    if output_type == "png":
        when = click_time(out / "audio.mka")
    else:
        when = click_time(out) - first_video_time(out)
    assert when == pytest.approx(beep, abs=TOLERANCE)
