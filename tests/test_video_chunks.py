"""A video converted in chunks and joined (:mod:`core.video.chunks`, what job workers do)
is the video converted whole: the same frames at the same timestamps, the same sound, in
every output container; the overlap frames settle temporal smoothing so the cut does not
show. In process, on small clips (the queue around it is tested in test_jobs.py).
"""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from core.video import VideoOptions, VideoReader, convert_video, video_pipeline
from core.video.chunks import Chunk, convert_chunk, frame_timestamps, join_chunks, split
from tests.test_video import write_clip

DATA = Path(__file__).parent / "data"
PERSON = Path(__file__).resolve().parents[1] / "samples" / "video" / "person.mp4"
FRAMES, CHUNK, OVERLAP = 60, 20, 16


@pytest.fixture(scope="module")
def pipeline():
    return video_pipeline()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """60 frames of person.mp4 at 240x160 with a 440 Hz tone (AAC)."""
    with VideoReader(PERSON, size=(160, 240), max_frames=FRAMES) as reader:
        frames = [f.image for f in reader]
    path = tmp_path_factory.mktemp("chunk-clips") / "person.mp4"
    write_clip(path, frames)
    return path


def chunked(source: Path, out: Path, pipeline, chunk_frames=CHUNK, overlap=OVERLAP, **options):
    """``source`` converted chunk by chunk and joined into ``out``; returns the join."""
    stamps = frame_timestamps(source)
    opts = VideoOptions(**options)
    parts = []
    for chunk in split(len(stamps), chunk_frames, overlap):
        suffix = "" if opts.output_type == "png" else out.suffix
        path = out.with_name(f"{out.stem}_part{chunk.index}{suffix}")
        parts.append((str(path), convert_chunk(source, path, chunk, stamps, pipeline=pipeline,
                                               options=opts)))
    return join_chunks(parts, out, source=source, audio=opts.audio)


def frames_of(path: Path, fmt="rgb24", codec=None) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        if codec is None:
            return [f.to_ndarray(format=fmt).astype(np.float32) for f in c.decode(stream)]
        ctx = av.CodecContext.create(codec, "r")  # libvpx-vp9 keeps VP9's alpha
        return [f.to_ndarray(format=fmt).astype(np.float32)
                for p in c.demux(stream) for f in ctx.decode(p)]


def times_of(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [round(float(f.pts * f.time_base), 4) for f in c.decode(video=0)]


def audio_of(path: Path) -> tuple[str, float]:
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        return a.codec_context.name, sum(f.samples for f in c.decode(a)) / a.codec_context.sample_rate


def test_split():
    assert split(100, 30, 16) == [Chunk(0, 0, 30, 0), Chunk(1, 30, 60, 14), Chunk(2, 60, 90, 44),
                                  Chunk(3, 90, 100, 74)]
    # a sliver shorter than a quarter chunk joins the chunk before it
    assert [(c.start, c.stop) for c in split(95, 30, 0)] == [(0, 30), (30, 60), (60, 95)]
    assert split(10, 30) == [Chunk(0, 0, 10, 0)]
    with pytest.raises(ValueError):
        split(0, 30)


def test_timestamps_are_every_frame(clip):
    stamps = frame_timestamps(clip)
    assert len(stamps) == FRAMES and list(stamps.pts) == sorted(stamps.pts)
    with VideoReader(clip) as reader:
        assert [f.pts for f in reader] == [p - stamps.start_pts for p in stamps.pts]


CASES = {  # name: (output file, output type, format, decoder for the check, pixel format)
    "mp4": ("out.mp4", "composite", None, None, "rgb24"),
    "mkv": ("out.mkv", "composite", None, None, "rgb24"),
    "webm": ("out.webm", "composite", None, None, "rgb24"),
    "alpha-mp4": ("out.mp4", "alpha", None, None, "gray"),
    "transparent-webm": ("out.webm", "transparent", "webm", "libvpx-vp9", "rgba"),
    "transparent-mov": ("out.mov", "transparent", "mov", None, "rgba"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_chunks_joined_are_the_video_converted_whole(tmp_path, clip, pipeline, case):
    name, output_type, fmt, codec, pix = CASES[case]
    whole = tmp_path / ("whole_" + name)
    convert_video(clip, output=whole, output_type=output_type, format=fmt, pipeline=pipeline,
                  progress=False)
    joined = tmp_path / ("joined_" + name)
    result = chunked(clip, joined, pipeline, output_type=output_type, format=fmt)
    assert result.frames == FRAMES and result.audio is not None
    assert times_of(joined) == times_of(whole)
    a, b = frames_of(whole, pix, codec), frames_of(joined, pix, codec)
    assert len(a) == len(b) == FRAMES
    if pix == "rgba":
        assert min(f[..., 3].min() for f in b) < 10 and max(f[..., 3].max() for f in b) > 245
    # Separate encodes differ a little (rate control, key frames); the pictures do not.
    assert max(np.abs(x - y).mean() for x, y in zip(a, b)) < 2.0
    codec_name, seconds = audio_of(joined)
    assert seconds == pytest.approx(audio_of(whole)[1], abs=0.03)


def test_png_chunks_joined(tmp_path, clip, pipeline):
    whole, joined = tmp_path / "whole", tmp_path / "joined"
    convert_video(clip, output=whole, output_type="png", pipeline=pipeline, progress=False)
    chunked(clip, joined, pipeline, output_type="png")
    names = sorted(p.name for p in whole.glob("frame_*.png"))
    assert names == sorted(p.name for p in joined.glob("frame_*.png")) and len(names) == FRAMES
    assert audio_of(joined / "audio.mka")[1] == pytest.approx(audio_of(whole / "audio.mka")[1], abs=0.03)
    # PNGs are lossless: what differs is only what the overlap did not settle. Compared as
    # seen: alpha, and colour times alpha (a colour under alpha 0 shows nowhere).
    def seen(path: Path) -> np.ndarray:
        rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32)
        return np.dstack([rgba[..., :3] * rgba[..., 3:] / 255, rgba[..., 3]])

    worst = max(np.abs(seen(whole / n) - seen(joined / n)).mean() for n in names)
    assert worst < 0.1


def test_the_overlap_is_what_hides_the_cut(tmp_path, clip, pipeline):
    """Alpha (lossless PNG) at the first frame after each cut, against the whole video's:
    with no overlap the smoothing starts afresh there and differs; with 16 frames it has
    settled (to a tenth of a grey level: the default video segmenter follows people, and
    a chunk's tracker, whose looks for newcomers start with the chunk, ends within a
    hair of the whole video's regions)."""
    whole = tmp_path / "whole"
    convert_video(clip, output=whole, output_type="png", pipeline=pipeline, progress=False)

    def alpha(folder: Path, index: int) -> np.ndarray:
        rgba = cv2.imread(str(folder / f"frame_{index:06d}.png"), cv2.IMREAD_UNCHANGED)
        return rgba[..., 3].astype(np.float32)

    cuts = [c.start for c in split(FRAMES, CHUNK, OVERLAP)[1:]]
    gaps = {}
    for overlap in (0, OVERLAP):
        out = tmp_path / f"overlap{overlap}"
        chunked(clip, out, pipeline, overlap=overlap, output_type="png", audio=False)
        gaps[overlap] = max(np.abs(alpha(out, i) - alpha(whole, i)).mean() for i in cuts)
    assert gaps[OVERLAP] < 0.1 < gaps[0] and gaps[OVERLAP] < gaps[0] / 4, gaps


@pytest.mark.parametrize("source", ["camera_audio_starts_late.mov", "phone_portrait_rotated.mp4"])
def test_real_world_files(tmp_path, pipeline, source):
    """PCM sound starting 0.25 s late (a camera MOV), a phone clip stored sideways."""
    path = DATA / source
    whole, joined = tmp_path / "whole.mp4", tmp_path / "joined.mp4"
    a = convert_video(path, output=whole, pipeline=pipeline, progress=False)
    chunked(path, joined, pipeline, chunk_frames=25)
    assert times_of(joined) == times_of(whole) and len(times_of(joined)) == a.frames
    assert frames_of(joined)[0].shape == frames_of(whole)[0].shape
    with av.open(str(whole)) as w, av.open(str(joined)) as j:
        sw, sj = w.streams.audio[0], j.streams.audio[0]
        assert sj.codec_context.name == sw.codec_context.name
        assert float(sj.start_time * sj.time_base) == pytest.approx(
            float(sw.start_time * sw.time_base), abs=0.002)
