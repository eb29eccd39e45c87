"""Video speed and steadiness on the CC BY 4.0 clips in ../shared/data/video.

Prints, for each matting backend asked for:

- frames per second of the whole :func:`core.video.convert_video` run (decode, segment,
  matte, composite over a background video, encode H.264), at 360x240 (the original
  notebook's size) and at the source size; models are loaded before the clock starts;
- flicker (:func:`core.video.flicker`): mean absolute change of alpha between consecutive
  frames (x 1000) where the input barely changed (grey level change <= 2 after a 5x5
  blur), over the whole frame and over the person's edge (pixels where the unsmoothed
  alpha is strictly between 0.02 and 0.98 in either frame), with temporal smoothing on and
  off; and what smoothing costs where things move: mean |alpha_smoothed -
  alpha_unsmoothed| (x 1000) where the input changed by 12 grey levels or more.

Usage::

    PYTHONPATH=. python benchmarks/bench_video.py [--data ../shared/data/video]
        [--matters guided-filter closed-form] [--closed-form-frames 20] [--max-frames 300]
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from core.images import to_float
from core.matters import create_matter
from core.registry import BackendUnavailable
from core.segmenters import create_segmenter
from core.trimap import mask_to_trimap
from core.video import (
    VIDEO_TRIMAP,
    BackgroundSource,
    EncodedVideoWriter,
    FrameProcessor,
    TemporalSmoother,
    VideoReader,
    composite_uint8,
    convert_video,
    flicker,
    probe,
    reuse_freed_memory,
    video_format,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "video"
STILL, MOVING = 2.0, 12.0


def clips(data: Path) -> list[Path]:
    found = sorted(Path(p) for p in glob.glob(str(data / "asl_*.mkv")))
    room = data / "one-by-one-person-detection.mp4"
    return found + ([room] if room.exists() else [])


def speed(paths, background, size, segmenter, matter, max_frames, workdir) -> tuple[int, float]:
    frames, seconds = 0, 0.0
    for i, path in enumerate(paths):
        out = Path(workdir) / f"speed_{i}.mp4"
        with contextlib.redirect_stdout(io.StringIO()):  # pymatting prints solver warnings
            result = convert_video(path, background=background, output=out, segmenter=segmenter,
                                   matter=matter, size=size, max_frames=max_frames,
                                   progress=False)
        frames += result.frames
        seconds += result.seconds
        out.unlink()
    return frames, seconds


def stages(path, background, size, segmenter, matter, max_frames, workdir) -> dict:
    """Milliseconds per frame of each stage, run one after another in one thread."""
    reuse_freed_memory()
    times = dict.fromkeys(("decode", "background", "segment", "smooth + trimap", "matte",
                           "composite", "encode"), 0.0)
    source = BackgroundSource(background, size)
    smoother, mask_before, alpha_before = TemporalSmoother(), None, None
    outputs, n = [], 0
    clock = time.perf_counter
    with VideoReader(path, size=size, max_frames=max_frames) as reader:
        frames = iter(reader)
        while True:
            t0 = clock()
            frame = next(frames, None)
            times["decode"] += clock() - t0
            if frame is None:
                break
            n += 1
            t0 = clock()
            bg = source.frame_at(frame.time)
            t1 = clock()
            mask = segmenter.segment(frame.image)
            t2 = clock()
            smoother.observe(frame.image)
            mask = mask_before = smoother.blend(mask_before, mask)
            trimap = mask_to_trimap(mask, VIDEO_TRIMAP)
            t3 = clock()
            image_f = to_float(frame.image)
            alpha, foreground = matter.matte(image_f, trimap, mask)
            alpha = alpha_before = smoother.blend(alpha_before, alpha)
            t4 = clock()
            outputs.append(composite_uint8(foreground, alpha, bg))
            t5 = clock()
            for key, a, b in (("background", t0, t1), ("segment", t1, t2),
                              ("smooth + trimap", t2, t3), ("matte", t3, t4), ("composite", t4, t5)):
                times[key] += b - a
    source.close()
    t0 = clock()
    fmt = video_format("composite", ".mp4")
    with EncodedVideoWriter(Path(workdir) / "stages.mp4", fmt, size, reader.info.fps) as writer:
        for image in outputs:
            writer.write(image)
    times["encode"] = clock() - t0
    return {k: 1000 * v / max(n, 1) for k, v in times.items()}


def alphas(path, size, segmenter, matter, smoothing, max_frames) -> tuple[list, list]:
    """Input frames and the per-frame alpha (before encoding) of one clip."""
    processor = FrameProcessor(segmenter, matter, "alpha", smoothing=smoothing)
    images, out = [], []
    with VideoReader(path, size=size, max_frames=max_frames) as reader:
        for frame in reader:
            processor.matte(frame.image)
            out.append(processor.last_alpha.copy())
            images.append(frame.image)
    return images, out


def steadiness(images, smooth, raw) -> dict:
    """Flicker with smoothing on and off over the same pixels, and the lag where it moves."""
    on, off = flicker(images, smooth, raw, STILL), flicker(images, raw, raw, STILL)
    lag, moving = 0.0, 0
    for t in range(1, len(images)):
        grey = [cv2.GaussianBlur(cv2.cvtColor(images[i], cv2.COLOR_RGB2GRAY), (5, 5), 0)
                for i in (t - 1, t)]
        mask = cv2.absdiff(grey[1], grey[0]) >= MOVING
        lag += float(np.abs(smooth[t] - raw[t])[mask].sum())
        moving += int(mask.sum())
    return {"on": on, "off": off, "lag": lag, "moving": moving}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--matters", nargs="+", default=["guided-filter", "closed-form"])
    p.add_argument("--closed-form-frames", type=int, default=20,
                   help="frames per clip for the slow closed-form backend")
    p.add_argument("--max-frames", type=int, default=300,
                   help="frames per clip (the room video has 1394)")
    p.add_argument("--no-flicker", action="store_true")
    p.add_argument("--accurate", action="store_true",
                   help="also time MediaPipe's accurate mode (pose + selfie per person)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    paths = clips(args.data.resolve())
    if not paths:
        raise SystemExit(f"no clips in {args.data}; pass --data")
    room = args.data.resolve() / "one-by-one-person-detection.mp4"
    background = str(room) if room.exists() else "#00ff00"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start; python {platform.python_version()}, "
          f"OpenCV {cv2.__version__}, threads {cv2.getNumThreads()}")
    for path in paths:
        info = probe(path)
        print(f"  {path.name}: {info.width}x{info.height}, {float(info.fps):g} fps, "
              f"{info.frame_count} frames")
    segmenter = create_segmenter("mediapipe", mode="fast")
    with tempfile.TemporaryDirectory() as workdir:
        print("\nspeed: convert_video, composite over the room video, H.264 out "
              "(frames per second, whole run)")
        for name in args.matters:
            try:
                matter = create_matter(name)
            except BackendUnavailable as exc:
                print(f"  {name:14s} skipped: {exc}")
                continue
            limit = args.closed_form_frames if name == "closed-form" else args.max_frames
            for label, size in (("360x240", "360x240"), ("source", None)):
                frames, seconds = speed(paths, background, size, segmenter, matter, limit, workdir)
                print(f"  {name:14s} {label:8s} {frames:5d} frames in {seconds:6.1f} s = "
                      f"{frames / seconds:6.1f} frames/s")
        print("\nwhere the time goes: each stage in turn, one thread, guided-filter "
              "(ms per frame, first asl clip)")
        matter = create_matter("guided-filter")
        for label, size in (("360x240", (240, 360)), ("source", probe(paths[0]).size)):
            ms = stages(paths[0], background, size, segmenter, matter, args.max_frames, workdir)
            print(f"  {label:8s} " + "  ".join(f"{k} {v:.1f}" for k, v in ms.items())
                  + f"  | total {sum(ms.values()):.1f}")
        print("\nthreads: the same clip at 360x240, one thread (stages above, in turn) vs "
              "convert_video's three threads, alternated 3 times (frames per second)")
        serial, threaded = [], []
        for _ in range(3):
            ms = stages(paths[0], background, (240, 360), segmenter, matter, args.max_frames, workdir)
            serial.append(1000 / sum(ms.values()))
            frames, seconds = speed(paths[:1], background, "360x240", segmenter, matter,
                                    args.max_frames, workdir)
            threaded.append(frames / seconds)
        print("  one thread " + " ".join(f"{v:.0f}" for v in serial)
              + " | threads " + " ".join(f"{v:.0f}" for v in threaded))
        if args.accurate:
            accurate = create_segmenter("mediapipe", mode="accurate")
            frames, seconds = speed(paths, background, "360x240", accurate, matter,
                                    args.max_frames, workdir)
            print(f"\n  mediapipe accurate mode + guided-filter, 360x240: {frames} frames in "
                  f"{seconds:.1f} s = {frames / seconds:.1f} frames/s")
    if args.no_flicker:
        return
    print("\nflicker at 360x240, guided-filter: mean |alpha change| x 1000 between frames where "
          "the input is still (lower is steadier)")
    matter = create_matter("guided-filter")
    rows = []
    for path in paths:
        images, smooth = alphas(path, (240, 360), segmenter, matter, True, args.max_frames)
        _, raw = alphas(path, (240, 360), segmenter, matter, False, args.max_frames)
        rows.append(steadiness(images, smooth, raw))
        print(f"  {path.name:34s} " + _row([rows[-1]]))
    print(f"  {'all clips (pixel-weighted)':34s} " + _row(rows))


def _row(rows: list) -> str:
    def mean(run, key):
        n = sum(r[run][f"{key}_pixels"] for r in rows)
        return 1000 * sum(r[run][key] * r[run][f"{key}_pixels"] for r in rows) / max(n, 1)
    lag = 1000 * sum(r["lag"] for r in rows) / max(sum(r["moving"] for r in rows), 1)
    return (f"still: off {mean('off', 'still'):5.2f} on {mean('on', 'still'):5.2f} | "
            f"still edge: off {mean('off', 'edge'):5.1f} on {mean('on', 'edge'):5.1f} | "
            f"lag where moving {lag:5.1f}")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\n({time.perf_counter() - t0:.0f} s)")
