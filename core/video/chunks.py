"""One video in pieces: frame ranges converted apart (on different machines, say) and
joined into one file that is the same as converting it whole.

- :func:`frame_timestamps` lists every frame's timestamp by reading the container's packets
  (no decoding); :func:`split` cuts ``[0, count)`` into :class:`Chunk` s.
- :func:`convert_chunk` converts one chunk into a file of its own. It starts ``overlap``
  frames before the chunk and runs them through the pipeline without writing them, so
  that the per-video state (:class:`core.temporal.VideoState`: temporal smoothing, and
  whatever else a video carries from frame to frame) has settled when the first written
  frame comes: the cut does not show. With the default smoothing (a still pixel moves
  25 % of the way per frame) a difference at the start has shrunk to 0.75^16 = 1 % after
  16 frames.
- :func:`join_chunks` remuxes the chunks' packets, untouched, into one file on the source's
  timeline and copies the source's audio over it once (:class:`~core.video.writers.AudioCopier`),
  so the sound is one continuous stream, in sync, with no gap or repeat at the joins.

Every chunk file starts with a key frame (each is a separate encode), so packets can be
concatenated as they are; the join checks that the chunks' codec parameters agree.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core.pipeline import Pipeline
from core.runtime import reuse_freed_memory
from core.video.convert import VideoOptions, plan, video_pipeline
from core.video.errors import VideoError
from core.video.reader import BackgroundSource, Frame, VideoReader, probe
from core.video.stages import run_stages
from core.video.writers import AudioCopier, EncodedVideoWriter

log = logging.getLogger("core.video")

DEFAULT_OVERLAP = 16


@dataclass(frozen=True)
class Timestamps:
    """Every frame's presentation timestamp, in display order.

    Attributes:
        pts: the stream's own timestamps (``time_base`` units), sorted; one per frame.
        time_base: the video stream's time base.
        start_pts: the stream's start (what :class:`VideoReader` counts from).
    """

    pts: tuple[int, ...]
    time_base: Fraction
    start_pts: int

    def __len__(self) -> int:
        return len(self.pts)


def frame_timestamps(path) -> Timestamps:
    """Read the video stream's packets (not decoding them) for each frame's timestamp.

    A 60-second clip takes a few tens of milliseconds. Packets the demuxer marks for
    discarding (an MP4 edit list cutting the start) are not frames.

    Raises:
        VideoError: unreadable file, no video stream, or packets without timestamps
            (such a stream cannot be cut by time; convert it whole).
    """
    import av

    info = probe(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            pts = []
            for packet in container.demux(stream):
                if packet.size == 0 and packet.pts is None:
                    continue  # the demuxer's flush packet
                if getattr(packet, "is_discard", False):
                    continue
                if packet.pts is None:
                    raise VideoError(f"{path}: video packets without timestamps; "
                                     "it cannot be cut into chunks")
                pts.append(int(packet.pts))
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot read {path}: {exc}") from None
    return Timestamps(tuple(sorted(pts)), info.time_base, info.start_pts)


@dataclass(frozen=True)
class Chunk:
    """Frames ``[start, stop)`` of a video (display order, from 0), processed from frame
    ``warmup`` (``start - overlap``, at least 0) so the video's state has settled."""

    index: int
    start: int
    stop: int
    warmup: int

    @property
    def frames(self) -> int:
        return self.stop - self.start


def split(count: int, chunk_frames: int, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    """Cut ``count`` frames into chunks of ``chunk_frames`` (the last one may be shorter;
    one shorter than a quarter chunk joins the one before it).

    Raises:
        ValueError: ``count < 1``, ``chunk_frames < 1`` or ``overlap < 0``.
    """
    if count < 1 or chunk_frames < 1 or overlap < 0:
        raise ValueError(f"need count >= 1, chunk_frames >= 1, overlap >= 0; got {count}, "
                         f"{chunk_frames}, {overlap}")
    bounds = list(range(0, count, chunk_frames)) + [count]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < max(1, chunk_frames // 4):
        del bounds[-2]  # a sliver at the end would pay the whole overlap for a few frames
    return [Chunk(i, a, b, max(0, a - overlap)) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


class RangeReader(VideoReader):
    """A :class:`VideoReader` over the frames whose timestamps (the stream's own, as
    :func:`frame_timestamps` gives them) lie in ``[from_pts, to_pts)``: it seeks to the key
    frame before ``from_pts`` and decodes from there. Frames keep the whole video's indices
    and timestamps (``first_index`` is the index of the first one), so backgrounds and
    timestamps are the same as when reading the whole video.

    ``None`` bounds mean the start / the end of the video.
    """

    def __init__(self, path, from_pts: int | None, to_pts: int | None, first_index: int = 0,
                 **kwargs):
        super().__init__(path, **kwargs)
        self.from_pts, self.to_pts, self.first_index = from_pts, to_pts, first_index

    def __len__(self) -> int:  # not known without the timestamps; the caller has them
        return 0

    def _decoded(self):
        """Decoded frames from the key frame at or before ``from_pts``."""
        if self.from_pts is not None and self.from_pts > self.info.start_pts:
            self._container.seek(self.from_pts, stream=self._stream, backward=True,
                                 any_frame=False)
            frames = self._container.decode(self._stream)
            first = next(frames, None)
            if first is not None and first.pts is not None and first.pts <= self.from_pts:
                yield first
                yield from frames
                return
            # The seek overshot (a container without a usable index): from the start.
            log.debug("seek to %s landed on %s; decoding from the start", self.from_pts,
                      None if first is None else first.pts)
            self._container.seek(self.info.start_pts, stream=self._stream, backward=True)
        yield from self._container.decode(self._stream)

    def __iter__(self):
        tb = self.info.time_base
        index = self.first_index
        last = None
        for av_frame in self._decoded():
            if av_frame.pts is None:
                raise VideoError(f"{self.info.path}: a frame without a timestamp; "
                                 "it cannot be read by time range")
            if self.from_pts is not None and av_frame.pts < self.from_pts:
                continue
            if self.to_pts is not None and av_frame.pts >= self.to_pts:
                break
            if self.max_frames is not None and index - self.first_index >= self.max_frames:
                break
            pts = av_frame.pts - self.info.start_pts
            if last is not None and pts <= last:  # as VideoReader: strictly increasing
                pts = last + 1
            last = pts
            yield Frame(self._rgb(av_frame), index, int(pts), tb)
            index += 1


def _frame_steps(pipeline, state, output_type: str, background):
    """The per-frame work as :func:`core.video.convert_video` runs it: as overlapping steps
    (segment | matte + render) where the video loop has them (``frame_steps``), else as
    the one :func:`~core.video.convert.frame_function`."""
    from core.video import convert

    if hasattr(convert, "frame_steps"):
        return list(convert.frame_steps(pipeline, state, output_type, background))
    return convert.frame_function(pipeline, state, output_type, background)


@dataclass
class ChunkResult:
    """What :func:`convert_chunk` wrote: ``frames`` frames from ``first_pts`` to
    ``last_pts`` (reader time base units, from the video's first frame), after ``warmup``
    frames processed and dropped."""

    path: str
    frames: int
    warmup: int
    first_pts: int | None
    last_pts: int | None
    seconds: float

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path) -> "ChunkResult":
        return cls(**json.loads(Path(path).read_text()))


class _IndexedPngWriter:
    """PNG frames named by their index in the whole video (``frame_000123.png``)."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.frames_written = 0

    def write(self, image: np.ndarray, index: int) -> None:
        code = {4: cv2.COLOR_RGBA2BGRA, 3: cv2.COLOR_RGB2BGR}.get(image.shape[2] if image.ndim == 3 else 0)
        path = self.folder / f"frame_{index:06d}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(image, code) if code is not None else image,
                           [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"could not write {path}")
        self.frames_written += 1

    def close(self) -> None:
        pass


def convert_chunk(foreground, output, chunk: Chunk, timestamps: Timestamps, *,
                  background="#00ff00", pipeline: Pipeline | None = None,
                  on_frame: Callable[[int], None] | None = None,
                  options: VideoOptions | None = None) -> ChunkResult:
    """Convert the frames of ``chunk`` into ``output`` (a video file of the output type's
    format, without audio; a folder of PNGs named by frame index for ``png``).

    Frames ``[chunk.warmup, chunk.start)`` go through the pipeline (settling the video's
    state) and are dropped; frames ``[chunk.start, chunk.stop)`` are written with their
    timestamps in the whole video (a muxer may still start the file at 0:
    :func:`join_chunks` puts the chunk back where its first frame belongs).

    Args:
        foreground: the whole video.
        output: the chunk's file (or folder, ``png``); written in place (write to a temporary
            name and rename if others may look).
        chunk: which frames; ``timestamps``: :func:`frame_timestamps` of ``foreground``.
        background, pipeline: as :func:`core.video.convert_video` (default pipeline:
            :func:`core.video.video_pipeline`).
        on_frame: called with the number of frames written so far after each written
            frame (progress; may raise to stop).
        options: :class:`VideoOptions` (``max_frames`` is not used: choose the chunks).
    Returns:
        :class:`ChunkResult`.
    Raises:
        VideoError, ParameterError: unreadable input, bad options; any stage's error.
    """
    opts = options or VideoOptions()
    foreground = str(foreground)
    target = plan(foreground, output, opts)
    pipeline = pipeline or video_pipeline()
    state = pipeline.new_video(opts.smoothing)
    reuse_freed_memory()
    pts = timestamps.pts
    first_kept = pts[chunk.start]
    from_pts = pts[chunk.warmup] if chunk.warmup > 0 else None
    to_pts = pts[chunk.stop] if chunk.stop < len(pts) else None
    bg_source = None
    if opts.output_type == "composite":
        bg_source = BackgroundSource(background, target.size, opts.fit)
    reader = RangeReader(foreground, from_pts, to_pts, first_index=chunk.warmup,
                         size=target.size if target.size != target.info.size else None,
                         fit=opts.fit)
    info = target.info
    try:
        if target.encoder is None:
            writer = _IndexedPngWriter(Path(output))
        else:
            writer = EncodedVideoWriter(output, target.encoder, target.size, info.fps,
                                        info.time_base)
    except BaseException:
        reader.close()
        if bg_source is not None:
            bg_source.close()
        raise
    keep_from = first_kept - info.start_pts  # reader timestamp of the first frame written
    kept = {"first": None, "last": None}

    def items():
        for frame in reader:
            bg = None
            if bg_source is not None and not bg_source.needs_image:
                bg = bg_source.frame_at(frame.time)
            yield frame, bg

    def write(out) -> None:
        image, frame_pts = out
        if frame_pts < keep_from:
            return  # an overlap frame: it settled the video's state; the chunk before has it
        if target.encoder is None:
            writer.write(image, chunk.start + writer.frames_written)
        else:
            # The frame's own timestamp (not counted from the chunk): containers that round
            # timestamps (Matroska, WebM: milliseconds) round it as the whole video would.
            writer.write(image, frame_pts)
        kept["first"] = frame_pts if kept["first"] is None else kept["first"]
        kept["last"] = frame_pts
        if on_frame is not None:
            on_frame(writer.frames_written)

    started = time.perf_counter()
    try:
        run_stages(items(), _frame_steps(pipeline, state, opts.output_type, bg_source), write)
        writer.close()
    finally:
        reader.close()
        if bg_source is not None:
            bg_source.close()
    frames = writer.frames_written
    if frames == 0:
        raise VideoError(f"{foreground}: no frames decoded in frames [{chunk.start}, {chunk.stop})")
    seconds = time.perf_counter() - started
    log.info("chunk %d: frames [%d, %d) (+%d to settle) in %.1f s", chunk.index, chunk.start,
             chunk.stop, chunk.start - chunk.warmup, seconds)
    return ChunkResult(str(output), frames, chunk.start - chunk.warmup, kept["first"],
                       kept["last"], seconds)


@dataclass
class JoinResult:
    output: str
    frames: int
    audio: str | None


# Output suffix -> FFmpeg muxer (and AudioCopier's container name), as core.video.writers.
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


def _with_dts(packets, step: int):
    """A chunk's packets (flush packets dropped), each with a decoding timestamp.

    Matroska and WebM store presentation times only: FFmpeg leaves the decoding time of
    the first packets unset while the decoder's reordering delay fills (H.264 with
    B-frames). They are put back here, one frame apart, before the first known one, as
    MP4 stores them; with none known at all (intra-only codecs), decoding time is
    presentation time."""
    pending = []
    for packet in packets:
        if packet.size == 0 and packet.pts is None:
            continue
        if packet.pts is None:
            raise VideoError("a chunk packet without a timestamp")
        if packet.dts is None:
            pending.append(packet)
            continue
        for k, held in enumerate(pending):
            held.dts = min(held.pts, packet.dts - (len(pending) - k) * step)
        yield from pending
        pending = []
        yield packet
    for held in pending:  # no decoding time anywhere
        held.dts = held.pts
        yield held


def _codec_parameters(stream) -> tuple:
    ctx = stream.codec_context
    return (ctx.name, ctx.width, ctx.height, getattr(ctx, "pix_fmt", None),
            bytes(ctx.extradata or b""))


def join_chunks(chunks: list[tuple[str, ChunkResult]], output, *, source,
                audio: bool = True) -> JoinResult:
    """Join chunk files (in order) into ``output``, with the source's audio.

    Packets are remuxed as they are, each chunk placed where its first frame lies in the
    source (``ChunkResult.first_pts``), so the output has the source's timestamps, like
    :func:`core.video.convert_video`'s; decoding timestamps must increase across the joins
    (they do for chunks from :func:`convert_chunk`: each starts with a key frame). The first audio stream of
    ``source`` is copied once over the whole (remuxed or transcoded as the container
    needs, its offset from the picture kept, cut at the video's end).

    For PNG chunks (folders), the frames are moved into ``output`` (a folder) and the audio
    goes beside them as ``audio.mka``.

    Args:
        chunks: ``(path, ChunkResult)`` in display order.
        output: the joined file (or folder).
        source: the original video (its audio, its timeline).
        audio: copy the source's audio when it has any.
    Raises:
        VideoError: no chunks, chunks whose codec parameters differ or that overlap in
            time, or an output suffix other than .mp4, .m4v, .mov, .mkv, .webm.
    """
    if not chunks:
        raise VideoError("nothing to join")
    info = probe(source)
    audio_source = str(source) if audio and info.audio is not None else None
    if Path(chunks[0][0]).is_dir():
        return _join_png(chunks, Path(output), info, audio_source)
    import av

    output = str(output)
    fmt = _MUXERS.get(Path(output).suffix.lower())
    if fmt is None:
        raise VideoError(f"cannot join into {output}: use .mp4, .mov, .mkv or .webm")
    inputs = [av.open(path) for path, _ in chunks]
    copier = None
    try:
        streams = [c.streams.video[0] for c in inputs]
        reference = _codec_parameters(streams[0])
        for (path, _), stream in zip(chunks, streams):
            if _codec_parameters(stream) != reference:
                raise VideoError(f"chunk {path} was encoded differently from the first "
                                 f"({_codec_parameters(stream)[:4]} vs {reference[:4]})")
        out = av.open(output, "w", format=fmt)
        try:
            out_stream = out.add_stream_from_template(streams[0])
            out_stream.time_base = streams[0].time_base
            if audio_source is not None:
                copier = AudioCopier(audio_source, out, fmt, info.start_time)
            frames, end, last_dts = 0, 0.0, None
            for (path, result), container, stream in zip(chunks, inputs, streams):
                tb = stream.time_base
                step = max(1, int(round(1 / (info.fps * tb))))  # noqa: RUF046 (a frame, in tb)
                # Where the chunk's first frame belongs; a muxer may have moved the chunk's
                # timeline to start at 0 (the first packet is the key frame, shown first).
                target = int(round(Fraction(result.first_pts) * info.time_base / tb))  # noqa: RUF046
                shift = None
                for packet in _with_dts(container.demux(stream), step):
                    if shift is None:
                        shift = target - packet.pts
                    packet.pts += shift
                    packet.dts += shift
                    if last_dts is not None and packet.dts <= last_dts:
                        raise VideoError(f"chunk {path} overlaps the one before it "
                                         f"(decoding time {packet.dts} after {last_dts})")
                    last_dts = packet.dts
                    end = max(end, float((packet.pts + step) * tb))
                    if copier is not None:
                        copier.write_until(float(packet.dts * tb))
                    packet.stream = out_stream
                    out.mux(packet)
                    frames += 1
            if copier is not None:
                copier.finish(end)
        finally:
            out.close()
    finally:
        for c in inputs:
            c.close()
    return JoinResult(output, frames, copier.mode if copier is not None else None)


def _join_png(chunks, output: Path, info, audio_source: str | None) -> JoinResult:
    output.mkdir(parents=True, exist_ok=True)
    frames, last = 0, None
    for path, result in chunks:
        for png in sorted(Path(path).glob("frame_*.png")):
            os.replace(png, output / png.name)
            frames += 1
        last = result.last_pts if result.last_pts is not None else last
    mode = None
    if audio_source is not None:
        import av

        container = av.open(str(output / "audio.mka"), "w", format="matroska")
        try:
            copier = AudioCopier(audio_source, container, "matroska", info.start_time,
                                 audio_only=True)
            copier.finish(float((last or 0) * info.time_base + 1 / info.fps))
            mode = copier.mode
        finally:
            container.close()
    return JoinResult(str(output), frames, mode)
