"""Video speed and steadiness on the CC BY 4.0 clips in ../shared/data/video.

Prints, for each matting backend asked for (MediaPipe following people, the video
default, unless ``--segmenter-mode`` says otherwise; ``benchmarks/bench_video_vs_rvm.py``
compares the default with RobustVideoMatting):

- frames per second of the whole :func:`core.video.convert_video` run (decode, segment,
  matte, composite over a background video, encode H.264), at 360x240 (the original
  notebook's size) and at the source size; models are loaded before the clock starts;
- where the time goes per frame: the pipeline's own stage timings (segmentation, trimap,
  matting) and the rest of the loop (decode, background, render, encode);
- flicker (:func:`evaluation.metrics.flicker`): mean absolute change of alpha between consecutive
  frames (x 1000) where the input barely changed (grey level change <= 2 after a 5x5
  blur), over the whole frame and over the person's edge (pixels where the unsmoothed
  alpha is strictly between 0.02 and 0.98 in either frame), with temporal smoothing on and
  off; and what smoothing costs where things move: mean |alpha_smoothed -
  alpha_unsmoothed| (x 1000) where the input changed by 12 grey levels or more.

Usage::

    .venv/bin/python benchmarks/bench_video.py [--data ../shared/data/video]
        [--matters guided-filter closed-form] [--closed-form-frames 20] [--max-frames 300]
        [--segmenter-mode tracking|fast|accurate]
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

from core.errors import BackendUnavailable
from core.matters import create_matter
from core.pipeline import Pipeline
from core.segmenters import create_segmenter
from core.video import VideoReader, convert_video, probe, video_pipeline
from evaluation.metrics import flicker

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "video"
STILL, MOVING = 2.0, 12.0


def clips(data: Path) -> list[Path]:
    found = sorted(Path(p) for p in glob.glob(str(data / "asl_*.mkv")))
    room = data / "one-by-one-person-detection.mp4"
    return found + ([room] if room.exists() else [])


def speed(paths, background, size, pipeline: Pipeline, max_frames, workdir,
          timings: dict | None = None) -> tuple[int, float]:
    """Frames and seconds of :func:`convert_video` over ``paths``; with ``timings``, the
    pipeline's per-stage milliseconds are summed into it (``frames`` counts them)."""
    frames, seconds = 0, 0.0
    run = pipeline.run
    if timings is not None:
        def timed_run(*args, **kwargs):
            result = run(*args, **kwargs)
            for stage, ms in result.timings.items():
                timings[stage] = timings.get(stage, 0.0) + ms
            return result
        pipeline.run = timed_run
    try:
        for i, path in enumerate(paths):
            out = Path(workdir) / f"speed_{i}.mp4"
            with contextlib.redirect_stdout(io.StringIO()):  # pymatting prints solver warnings
                result = convert_video(path, background=background, output=out,
                                       pipeline=pipeline, size=size, max_frames=max_frames,
                                       progress=False)
            frames += result.frames
            seconds += result.seconds
            out.unlink()
    finally:
        pipeline.run = run
    return frames, seconds


def alphas(path, size, pipeline: Pipeline, smoothing, max_frames) -> tuple[list, list]:
    """Input frames and the per-frame alpha (before encoding) of one clip."""
    state = pipeline.new_video(smoothing)
    images, out = [], []
    with VideoReader(path, size=size, max_frames=max_frames) as reader:
        for frame in reader:
            out.append(pipeline.run(frame.image, state=state).alpha.copy())
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
    p.add_argument("--segmenter-mode", choices=["tracking", "fast", "accurate"], default="tracking",
                   help="MediaPipe mode of the runs (default: tracking, the video default)")
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
    segmenter = (create_segmenter("mediapipe-tracking") if args.segmenter_mode == "tracking"
                 else create_segmenter("mediapipe", mode=args.segmenter_mode))
    with tempfile.TemporaryDirectory() as workdir:
        print("\nspeed: convert_video, composite over the room video, H.264 out "
              "(frames per second, whole run)")
        for name in args.matters:
            try:
                pipeline = video_pipeline(segmenter, create_matter(name))
            except BackendUnavailable as exc:
                print(f"  {name:14s} skipped: {exc}")
                continue
            limit = args.closed_form_frames if name == "closed-form" else args.max_frames
            for label, size in (("360x240", "360x240"), ("source", None)):
                frames, seconds = speed(paths, background, size, pipeline, limit, workdir)
                print(f"  {name:14s} {label:8s} {frames:5d} frames in {seconds:6.1f} s = "
                      f"{frames / seconds:6.1f} frames/s")
        print("\nwhere the time goes (ms per frame, guided-filter, first clip): the pipeline's "
              "stages; 'other' is the rest of the loop's wall clock per frame (decode, "
              "background, render, encode, overlapping in threads)")
        pipeline = video_pipeline(segmenter, create_matter("guided-filter"))
        for label, size in (("360x240", "360x240"), ("source", None)):
            timings: dict = {}
            frames, seconds = speed(paths[:1], background, size, pipeline, args.max_frames,
                                    workdir, timings)
            per_frame = {k: v / frames for k, v in timings.items()}
            other = 1000 * seconds / frames - sum(per_frame.values())
            print(f"  {label:8s} " + "  ".join(f"{k} {v:.1f}" for k, v in per_frame.items())
                  + f"  other {max(other, 0.0):.1f} | wall {1000 * seconds / frames:.1f}")
        if args.accurate:
            accurate = video_pipeline(create_segmenter("mediapipe", mode="accurate"),
                                      create_matter("guided-filter"))
            frames, seconds = speed(paths, background, "360x240", accurate, args.max_frames,
                                    workdir)
            print(f"\n  mediapipe accurate mode + guided-filter, 360x240: {frames} frames in "
                  f"{seconds:.1f} s = {frames / seconds:.1f} frames/s")
    if args.no_flicker:
        return
    print("\nflicker at 360x240, guided-filter: mean |alpha change| x 1000 between frames where "
          "the input is still (lower is steadier)")
    pipeline = video_pipeline(segmenter, create_matter("guided-filter"))
    rows = []
    for path in paths:
        images, smooth = alphas(path, (240, 360), pipeline, True, args.max_frames)
        _, raw = alphas(path, (240, 360), pipeline, False, args.max_frames)
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
