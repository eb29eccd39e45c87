"""Person segmentation quality and speed on the shared data: IoU of ``mask > 0.5``.

Usage::

    .venv/bin/python benchmarks/eval_segmentation.py [--quick] [--data DIR]

Prints a Markdown table: one row per segmenter variant (the MediaPipe backend's modes, and
the single MediaPipe models it combines, for reference), mean IoU on DAVIS dance-twirl
(full body), the portraits set (mostly upper body) and group composites (2-3 portraits
side by side), the worst per-person recall in the groups, and milliseconds per frame on
this CPU at 854x480 and 360x240.

The data sets and measures are the evaluation's own (:mod:`evaluation.datasets`,
:mod:`evaluation.metrics`); the group composites are
:func:`evaluation.datasets.group_composites` with whole people only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from evaluation import datasets
from evaluation.metrics import iou, recall

# 8 composites of 2-3 whole portraits side by side, none cut (20 people).
GROUPS = ("--", "---", "--", "---", "--", "---", "--", "---")


def evaluate(segmenter, samples) -> dict:
    """Mean IoU of ``mask > 0.5`` (and, for groups, per-person recall) of
    ``segmenter.segment`` on :class:`evaluation.datasets.Sample` s.

    Returns:
        ``{"mean_iou", "ious": {name: iou}, "min_recall", "recalls": {name: [recall]}}``
        (``min_recall`` is ``None`` when no sample knows its people).
    """
    ious, recalls = {}, {}
    for sample in samples:
        prediction = segmenter.segment(sample.image)
        ious[sample.name] = iou(prediction > 0.5, sample.truth)
        if sample.people:
            recalls[sample.name] = [recall(prediction, p.truth) for p in sample.people]
        sample.release()
    every = [r for rs in recalls.values() for r in rs]
    return {"mean_iou": float(np.mean(list(ious.values()))) if ious else float("nan"),
            "ious": ious, "min_recall": min(every) if every else None, "recalls": recalls}


def time_per_frame(segmenter, image: np.ndarray, size: tuple[int, int] = (854, 480),
                   repeats: int = 20, warmup: int = 3) -> float:
    """Mean milliseconds of ``segmenter.segment`` on ``image`` resized to ``size`` (w, h)."""
    frame = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    for _ in range(warmup):
        segmenter.segment(frame)
    start = time.perf_counter()
    for _ in range(repeats):
        segmenter.segment(frame)
    return 1000.0 * (time.perf_counter() - start) / repeats


class PoseReference:
    """``mp.solutions.pose`` with segmentation (one person), as a reference single model."""

    def __init__(self):
        import mediapipe as mp

        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                            enable_segmentation=True)

    def segment(self, image: np.ndarray) -> np.ndarray:
        mask = self._pose.process(image).segmentation_mask
        return np.zeros(image.shape[:2], np.float32) if mask is None else mask


def variants() -> list[tuple[str, callable]]:
    """``[(label, factory)]`` of the segmenters to score."""
    from core.segmenters import create_segmenter

    return [
        ("mediapipe mode=accurate (default)", lambda: create_segmenter("mediapipe")),
        ("mediapipe mode=accurate, flip_average=False",
         lambda: create_segmenter("mediapipe", flip_average=False)),
        ("mediapipe mode=fast (selfie general)", lambda: create_segmenter("mediapipe", mode="fast")),
        ("mediapipe mode=fast, model=landscape",
         lambda: create_segmenter("mediapipe", mode="fast", model="landscape")),
        ("reference: mp.solutions.pose (one person)", PoseReference),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="every 3rd dance frame and portrait, fewer timing runs")
    parser.add_argument("--data", help="shared data folder (default $EVAL_DATA, else ../shared/data)")
    parser.add_argument("--only", help="score only the variants whose label contains this")
    args = parser.parse_args(argv)
    root = datasets.default_data_dir() if args.data is None else Path(args.data)
    present = datasets.available(root)
    if not (present["portraits"] and present["davis"]):
        print(f"no evaluation data under {root}", file=sys.stderr)
        return 2
    step = 3 if args.quick else 1
    portraits = sorted(datasets.portraits(root), key=lambda s: s.image_path.name)
    sets = {"dance-twirl": datasets.davis(root)[::step],
            "portraits": portraits[::step],
            "groups": datasets.group_composites(portraits, layouts=GROUPS)}
    timing_image = sets["dance-twirl"][0].image
    repeats = 5 if args.quick else 20
    print(f"{len(sets['dance-twirl'])} dance-twirl frames, {len(sets['portraits'])} portraits, "
          f"{len(sets['groups'])} group composites "
          f"({sum(len(s.people) for s in sets['groups'])} people); CPU, {os.cpu_count()} cores\n")
    print("| segmenter | dance-twirl IoU | portraits IoU | groups IoU | groups min person recall "
          "| ms/frame 854x480 | ms/frame 360x240 |")
    print("|---|---|---|---|---|---|---|")
    for label, factory in variants():
        if args.only and args.only not in label:
            continue
        segmenter = factory()
        scores = {name: evaluate(segmenter, samples) for name, samples in sets.items()}
        ms_large = time_per_frame(segmenter, timing_image, (854, 480), repeats)
        ms_small = time_per_frame(segmenter, timing_image, (360, 240), repeats)
        print(f"| {label} | {scores['dance-twirl']['mean_iou']:.3f} "
              f"| {scores['portraits']['mean_iou']:.3f} | {scores['groups']['mean_iou']:.3f} "
              f"| {scores['groups']['min_recall']:.3f} | {ms_large:.1f} | {ms_small:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
