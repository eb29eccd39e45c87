"""Person segmentation quality and speed on the shared data: IoU of ``mask > 0.5``.

Usage::

    PYTHONPATH=. .venv/bin/python benchmarks/eval_segmentation.py [--quick] [--data DIR]

Prints a Markdown table: one row per segmenter variant (the MediaPipe backend's modes, and
the single MediaPipe models it combines, for reference), mean IoU on DAVIS dance-twirl
(full body), the portraits set (mostly upper body) and group composites (2-3 portraits
side by side), the worst per-person recall in the groups, and milliseconds per frame on
this CPU at 854x480 and 360x240.

Importable: :func:`load_dataset`, :func:`make_groups`, :func:`mask_iou`,
:func:`person_recall`, :func:`evaluate`, :func:`time_per_frame` are plain functions.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.datasets import portrait_panel, single_person  # noqa: E402  (one rule each)

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DATASETS = ("dance-twirl", "portraits", "groups")


@dataclass
class Sample:
    """One image and its truth: ``image`` uint8 RGB ``H x W x 3``, ``mask`` bool ``H x W``
    (all people), and for group composites ``people``: one bool mask per person."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    people: list[np.ndarray] = field(default_factory=list)


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The shared data folder: ``path``, else ``$SEGMENTATION_DATA``, else ``../shared/data``."""
    return Path(path or os.environ.get("SEGMENTATION_DATA") or DEFAULT_DATA)


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FileNotFoundError(f"cannot read mask {path}")
    if mask.shape != shape:  # some portrait masks are smaller than their image
        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return mask > 127


def load_dataset(name: str, root: str | os.PathLike | None = None, step: int = 1,
                 limit: int | None = None) -> list[Sample]:
    """``dance-twirl``, ``portraits`` or ``groups`` (composites, see :func:`make_groups`).

    Args:
        step: take every ``step``-th file (sorted by name); ``limit``: at most this many.
    Raises:
        ValueError: unknown name. FileNotFoundError: the data is not there.
    """
    if name == "groups":
        groups = make_groups(load_dataset("portraits", root))
        return groups[::step][:limit]
    if name == "dance-twirl":
        folder = data_dir(root) / "davis" / "dance-twirl"
    elif name == "portraits":
        folder = data_dir(root) / "portraits"
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    images = sorted(p for p in (folder / "images").iterdir()
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    samples = []
    for path in images[::step][:limit]:
        image = _read_rgb(path)
        mask = _read_mask(folder / "masks" / (path.stem + ".png"), image.shape[:2])
        samples.append(Sample(path.stem, image, mask))
    return samples


def make_groups(portraits: list[Sample], sizes=(2, 3, 2, 3, 2, 3, 2, 3), height: int = 480,
                seed: int = 0) -> list[Sample]:
    """Group photos made from single-person portraits: each portrait scaled to ``height``,
    cropped to its person plus a margin, and put side by side (``sizes`` people per group;
    the portraits in a fixed random order drawn with ``seed``, none used twice). Each
    person's mask is kept in ``people`` (a panel whose portrait holds two people close
    together counts as one "person" there)."""
    singles = [s for s in portraits if single_person(s.mask)]
    order = np.random.default_rng(seed).permutation(len(singles))  # mix the sources
    singles = [singles[i] for i in order]
    groups, start = [], 0
    for size in sizes:
        members = singles[start:start + size]
        if len(members) < size:
            break
        start += size
        panels, masks = [], []
        for sample in members:
            image, mask = portrait_panel(sample.image, sample.mask, height)
            panels.append(image)
            masks.append(mask)
        canvas = np.concatenate(panels, axis=1)
        people, offset = [], 0
        for mask in masks:
            person = np.zeros(canvas.shape[:2], bool)
            person[:, offset:offset + mask.shape[1]] = mask
            people.append(person)
            offset += mask.shape[1]
        name = "+".join(s.name for s in members)
        groups.append(Sample(name, np.ascontiguousarray(canvas), np.any(people, axis=0), people))
    return groups


def mask_iou(prediction: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of ``prediction > threshold`` (soft mask) with the bool ``truth``; 1 if both empty."""
    predicted = prediction > threshold
    union = np.count_nonzero(predicted | truth)
    return 1.0 if union == 0 else np.count_nonzero(predicted & truth) / union


def person_recall(prediction: np.ndarray, person: np.ndarray, threshold: float = 0.5) -> float:
    """Share of one person's true pixels that ``prediction > threshold`` covers."""
    total = np.count_nonzero(person)
    return 1.0 if total == 0 else np.count_nonzero((prediction > threshold) & person) / total


def evaluate(segmenter, samples: list[Sample]) -> dict:
    """Mean IoU (and, for groups, per-person recall) of ``segmenter.segment`` on ``samples``.

    Returns:
        ``{"mean_iou", "ious": {name: iou}, "min_recall", "recalls": {name: [recall]}}``
        (``min_recall`` is ``None`` when no sample has per-person masks).
    """
    ious, recalls = {}, {}
    for sample in samples:
        prediction = segmenter.segment(sample.image)
        ious[sample.name] = mask_iou(prediction, sample.mask)
        if sample.people:
            recalls[sample.name] = [person_recall(prediction, p) for p in sample.people]
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
    parser.add_argument("--data", help=f"shared data folder (default {DEFAULT_DATA})")
    parser.add_argument("--only", help="score only the variants whose label contains this")
    args = parser.parse_args(argv)
    root = data_dir(args.data)
    if not (root / "portraits").is_dir() or not (root / "davis" / "dance-twirl").is_dir():
        print(f"no evaluation data under {root}", file=sys.stderr)
        return 2
    step = 3 if args.quick else 1
    portraits = load_dataset("portraits", root)
    sets = {"dance-twirl": load_dataset("dance-twirl", root, step=step),
            "portraits": portraits[::step],
            "groups": make_groups(portraits)}
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
