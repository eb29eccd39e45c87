"""The evaluation data sets (outside the repository, see ``/work/shared/data/README.md``).

Each loader returns a list of :class:`Sample` whose arrays load on first use, so listing
a data set is cheap and quick mode reads only the files it scores.

- ``alphamatting``: image, true alpha (``float32`` in [0, 1]), trimaps ``trimap1`` / ``trimap2``;
- ``davis`` (the ``dance-twirl`` sequence) and ``portraits``: image and a binary person mask,
  resized to the image with nearest neighbour where it is smaller.

People sets (:mod:`benchmarks.bench_people`), each sample carrying :class:`PersonRef` s:

- :func:`group_composites`: 2-4 single-person portraits side by side, some cut by the
  frame's left or right edge, some smaller and standing lower; each person keeps their
  true mask and their photo alone (the uncut panel) as the reference;
- :func:`classroom`: the frames of ``video/classroom.mp4`` with the four seated people's
  boxes, annotated once by eye in ``evaluation/people.json``;
- :func:`group_at_frame_edge` and :func:`tiny_case`: the two people cases in
  ``../shared/cases``, with the geometry of the people in them (``people.json``);
- :func:`small_photos`: portraits scaled down to a long side of 32 to 200 pixels.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from core.images import read_image_file
from core.trimap import decode_trimap

TRIMAPS = ("trimap1", "trimap2")

# Quick mode (CI) scores a fixed handful of items: the three alphamatting images with
# the smallest unknown bands (the fastest to solve), and evenly spaced picks elsewhere.
QUICK_ALPHAMATTING = ("GT01", "GT05", "GT19")
QUICK_DAVIS_STEP = 15        # frames 0, 15, ..., 75: 6 frames
QUICK_PORTRAITS_COUNT = 8


def default_data_dir() -> Path:
    """``$EVAL_DATA``, else ``<repo>/../shared/data``."""
    env = os.environ.get("EVAL_DATA", "")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def default_cases_dir() -> Path:
    """``$EVAL_CASES``, else ``<repo>/../shared/cases``."""
    env = os.environ.get("EVAL_CASES", "")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "cases"


ANNOTATIONS = Path(__file__).resolve().parent / "people.json"


@dataclass
class PersonRef:
    """One known person in a people-set sample.

    Attributes:
        name: a short label.
        box: ``(x0, y0, x1, y1)`` where the person's panel (or box) lies in the sample.
        truth: ``bool`` ``H x W`` (the sample's size): the person's true pixels that are
            visible in the sample, or ``None`` when unknown.
        core: boxes ``(x0, y0, x1, y1)`` whose pixels are surely this person (box-annotated
            people: the central part of a head box and of a torso box).
        solo: ``uint8`` RGB image of this person alone (their uncut panel), or ``None``.
        solo_box: the region of ``solo`` that maps onto ``box`` (same size, or scaled to
            it when the sample shows the person smaller).
    """

    name: str
    box: tuple
    truth: np.ndarray | None = None
    core: list = field(default_factory=list)
    solo: np.ndarray | None = None
    solo_box: tuple | None = None


def _from_cache(dataset: str, name: str, image: np.ndarray, truth, source: Path) -> "Sample":
    """A :class:`Sample` whose arrays are already in memory (made, not read)."""
    sample = Sample(dataset, name, source, source, made=True)
    sample._cache["image"] = np.ascontiguousarray(image)
    if truth is not None:
        sample._cache["truth"] = truth
    return sample


@dataclass
class Sample:
    """One scored item; ``image`` (uint8 RGB) and ``truth`` load lazily."""

    dataset: str
    name: str
    image_path: Path
    truth_path: Path
    trimap_paths: dict = field(default_factory=dict)
    people: list = field(default_factory=list)   # PersonRef, people sets only
    made: bool = False   # arrays made in memory (composites, frames), not read from files
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def image(self) -> np.ndarray:
        if "image" not in self._cache:
            self._cache["image"] = read_image_file(self.image_path)
        return self._cache["image"]

    @property
    def truth(self) -> np.ndarray:
        """Alpha (``float32`` [0, 1]) for alphamatting; ``bool`` person mask otherwise."""
        if "truth" not in self._cache:
            grey = np.asarray(Image.open(self.truth_path).convert("RGB"))[:, :, 0]
            h, w = self.image.shape[:2]
            if self.dataset == "alphamatting":
                if grey.shape != (h, w):
                    raise ValueError(f"{self.truth_path}: alpha {grey.shape} vs image {(h, w)}")
                self._cache["truth"] = grey.astype(np.float32) / 255.0
            else:
                if grey.shape != (h, w):  # many portrait masks are smaller than their image
                    grey = cv2.resize(grey, (w, h), interpolation=cv2.INTER_NEAREST)
                self._cache["truth"] = grey >= 128
        return self._cache["truth"]

    def trimap(self, which: str) -> np.ndarray:
        """``uint8`` trimap 0 / 128 / 255 (alphamatting only)."""
        key = "trimap:" + which
        if key not in self._cache:
            self._cache[key] = decode_trimap(self.trimap_paths[which].read_bytes())
        return self._cache[key]

    def release(self) -> None:
        """Forget the loaded arrays (keeps memory flat over 145 portraits). Made samples
        (composites, frames) keep theirs: there is no file to read them back from."""
        if not self.made:
            self._cache.clear()


def _require(path: Path) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"data folder {path} is missing")
    return path


def alphamatting(data_dir: Path, quick: bool = False) -> list[Sample]:
    root = _require(Path(data_dir) / "alphamatting")
    samples = []
    for image_path in sorted((root / "input").glob("*.png")):
        name = image_path.stem
        if quick and name not in QUICK_ALPHAMATTING:
            continue
        samples.append(Sample("alphamatting", name, image_path, root / "gt" / image_path.name,
                              {t: root / t / image_path.name for t in TRIMAPS}))
    return samples


def davis(data_dir: Path, quick: bool = False, sequence: str = "dance-twirl") -> list[Sample]:
    root = _require(Path(data_dir) / "davis" / sequence)
    frames = sorted((root / "images").glob("*.jpg"))
    if quick:
        frames = frames[::QUICK_DAVIS_STEP]
    return [Sample("davis", p.stem, p, root / "masks" / (p.stem + ".png")) for p in frames]


def _natural_key(path: Path):
    stem = path.stem
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def portraits(data_dir: Path, quick: bool = False) -> list[Sample]:
    root = _require(Path(data_dir) / "portraits")
    images = sorted((p for p in (root / "images").iterdir()
                     if p.suffix.lower() in (".jpg", ".jpeg", ".png")), key=_natural_key)
    samples = [Sample("portraits", p.stem, p, root / "masks" / (p.stem + ".png"))
               for p in images if (root / "masks" / (p.stem + ".png")).is_file()]
    if quick:
        step = max(len(samples) // QUICK_PORTRAITS_COUNT, 1)
        samples = samples[::step][:QUICK_PORTRAITS_COUNT]
    return samples


def available(data_dir: Path) -> dict[str, bool]:
    """Which of the three scored data sets are present."""
    data_dir = Path(data_dir)
    return {"alphamatting": (data_dir / "alphamatting" / "input").is_dir(),
            "davis": (data_dir / "davis" / "dance-twirl" / "images").is_dir(),
            "portraits": (data_dir / "portraits" / "images").is_dir()}


# -- people sets ----------------------------------------------------------------------


def load_annotations() -> dict:
    """The hand annotations in ``evaluation/people.json`` (boxes, case geometry)."""
    return json.loads(ANNOTATIONS.read_text())


def single_person(mask: np.ndarray) -> bool:
    """Most likely one person, big in the frame: one blob holding nearly all of the mask,
    no wider than 0.9 of its height (two people side by side are wider), 10-60 % of the
    image, touching the bottom edge (a portrait, not a street scene)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return False
    areas = stats[1:, cv2.CC_STAT_AREA]
    blob = 1 + int(np.argmax(areas))
    narrow = stats[blob, cv2.CC_STAT_WIDTH] <= 0.9 * stats[blob, cv2.CC_STAT_HEIGHT]
    fraction = mask.mean()
    return bool(areas.max() >= 0.97 * areas.sum() and narrow and 0.1 <= fraction <= 0.6
                and mask[-1].any())


# Each group: (people, layout). A layout letter per person: "L" cut by the left edge
# (the panel loses 35 % of the person's width), "R" cut by the right edge, "s" small
# (0.6 of the height, standing on the bottom edge, grey above as in the shared case),
# "-" whole at full height.
GROUP_LAYOUTS = ("L-", "-R", "L--", "-s-", "L-sR", "--", "-s", "Ls-R", "--R", "s--")


def portrait_panel(image: np.ndarray, truth: np.ndarray,
                   height: int) -> tuple[np.ndarray, np.ndarray]:
    """A portrait (``uint8`` RGB, ``bool`` person mask) scaled to ``height`` and cropped to
    its person plus 10 % margins: ``(image, mask)``."""
    h, w = truth.shape
    new_w = max(1, round(w * height / h))
    image = cv2.resize(image, (new_w, height), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(truth.astype(np.uint8), (new_w, height),
                      interpolation=cv2.INTER_NEAREST) > 0
    xs = np.flatnonzero(mask.any(axis=0))
    margin = int(0.1 * new_w)
    x0, x1 = max(0, xs.min() - margin), min(new_w, xs.max() + 1 + margin)
    return np.ascontiguousarray(image[:, x0:x1]), np.ascontiguousarray(mask[:, x0:x1])


def group_composites(portrait_samples: list[Sample], layouts=GROUP_LAYOUTS, height: int = 480,
                     seed: int = 0, grey: int = 200) -> list[Sample]:
    """Group photos made from single-person portraits (:func:`single_person`), side by side.

    Each person is scaled to ``height`` (or 0.6 of it for ``s``), cropped to their body
    plus a margin; ``L`` / ``R`` cut the panel through the person at the left / right
    frame edge. The portraits come in a fixed random order (``seed``), none used twice.

    Returns:
        samples whose ``truth`` is every visible person and whose ``people`` hold, per
        person, the visible true pixels, the uncut panel alone (``solo``) and where the
        visible part lies in it (``solo_box``).
    """
    singles = [s for s in portrait_samples if single_person(s.truth)]
    order = np.random.default_rng(seed).permutation(len(singles))
    singles = [singles[i] for i in order]
    groups, start = [], 0
    for layout in layouts:
        members = singles[start:start + len(layout)]
        if len(members) < len(layout):
            break
        start += len(layout)
        pieces = []  # (visible image, visible mask, solo image, solo box, y offset)
        for sample, kind in zip(members, layout):
            image, mask = portrait_panel(sample.image, sample.truth,
                                         round(0.6 * height) if kind == "s" else height)
            ph, pw = mask.shape
            xs = np.flatnonzero(mask.any(axis=0))
            x0, x1 = 0, pw
            if kind == "L":
                x0 = int(xs.min() + 0.35 * (xs.max() - xs.min()))
            elif kind == "R":
                x1 = int(xs.max() + 1 - 0.35 * (xs.max() - xs.min()))
            pieces.append((image[:, x0:x1], mask[:, x0:x1], image, (x0, 0, x1, ph),
                           height - ph))
        width = sum(p[0].shape[1] for p in pieces)
        canvas = np.full((height, width, 3), grey, np.uint8)
        people, offset = [], 0
        for index, (image, mask, solo, solo_box, top) in enumerate(pieces):
            ph, pw = mask.shape
            canvas[top:top + ph, offset:offset + pw] = image
            truth = np.zeros((height, width), bool)
            truth[top:top + ph, offset:offset + pw] = mask
            people.append(PersonRef(f"{index}:{layout[index]}:{members[index].name}",
                                    (offset, top, offset + pw, top + ph), truth=truth,
                                    solo=solo, solo_box=solo_box))
            offset += pw
        name = f"{layout}:" + "+".join(s.name for s in members)
        sample = _from_cache("groups", name, canvas, np.any([p.truth for p in people], axis=0),
                             members[0].image_path)
        sample.people = people
        groups.append(sample)
    return groups


def read_video_frames(path: Path) -> list[np.ndarray]:
    """All frames of a video, ``uint8`` RGB (OpenCV's decoder; measurement only)."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise FileNotFoundError(f"no frames read from {path}")
    return frames


def _core(box, shrink: float) -> tuple[int, int, int, int]:
    """The central part of ``box``: ``shrink`` of its width and height cut off each side."""
    x0, y0, x1, y1 = box
    dx, dy = shrink * (x1 - x0), shrink * (y1 - y0)
    return (round(x0 + dx), round(y0 + dy), round(x1 - dx), round(y1 - dy))


CLASSROOM_SIZE = (270, 480)  # (height, width) the boxes of people.json are drawn on


def classroom_cores(size: tuple[int, int] = CLASSROOM_SIZE) -> list[list[tuple]]:
    """Each classroom person's core boxes (head, torso) from ``people.json``, scaled from the
    480x270 frames to ``size = (height, width)`` (same aspect)."""
    spec = load_annotations()["classroom"]
    shrink = float(spec["core_shrink"])
    sy, sx = size[0] / CLASSROOM_SIZE[0], size[1] / CLASSROOM_SIZE[1]
    return [[tuple(round(v * s) for v, s in zip(_core(box, shrink), (sx, sy, sx, sy)))
             for box in (person["head"], person["torso"])] for person in spec["people"]]


def classroom(data_dir: Path, quick: bool = False) -> list[Sample]:
    """The 45 frames of ``video/classroom.mp4`` (480x270), four seated people each.

    No true masks: each person has a head box and a torso box (down to the desk),
    annotated once by eye on frames 0, 15, 30 and 44 (the people barely move) in
    ``people.json``. Their central parts (``core_shrink`` cut off each side, see the
    file) are surely that person, so the share of those pixels in the matte measures
    whether the person is there. ``quick``: every 5th frame.
    """
    spec = load_annotations()["classroom"]
    path = _require(Path(data_dir) / "video").joinpath("classroom.mp4")
    frames = read_video_frames(path)
    shrink = float(spec["core_shrink"])
    people = []
    for person in spec["people"]:
        head, torso = person["head"], person["torso"]
        box = (min(head[0], torso[0]), min(head[1], torso[1]),
               max(head[2], torso[2]), max(head[3], torso[3]))
        people.append(PersonRef(person["name"], box,
                                core=[_core(head, shrink), _core(torso, shrink)]))
    step = 5 if quick else 1
    samples = []
    for index in range(0, len(frames), step):
        sample = _from_cache("classroom", f"frame{index:02d}", frames[index], None, path)
        sample.people = people
        samples.append(sample)
    return samples


def _crop(image: np.ndarray, spec: dict) -> np.ndarray:
    x0, y0, x1, y1 = spec["crop"]
    out = image[y0:y1, x0:x1]
    if spec.get("mirror"):
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def group_at_frame_edge(cases_dir: Path) -> Sample:
    """``group_at_frame_edge.jpg``: three people, the left one cut by the frame's edge.

    No true masks; each person's photo alone is in the case itself (``people.json``:
    the middle person uncut, mirrored for the left one; the small one at the right),
    so a method's result on the person alone is the reference for their pixels.
    """
    spec = load_annotations()["group_at_frame_edge"]
    path = Path(cases_dir) / spec["file"]
    image = read_image_file(path)
    people = [PersonRef(p["name"], tuple(p["box"]), solo=_crop(image, p["solo"]),
                        solo_box=tuple(p["solo_box"])) for p in spec["people"]]
    sample = _from_cache("cases", spec["file"], image, None, path)
    sample.people = people
    return sample


def tiny_case(cases_dir: Path) -> Sample:
    """``tiny_64x64.png``: one person in a 64x64 photo; the same photo at 512x512 is in
    ``group_at_frame_edge.jpg`` (``people.json``), so the method's result there, scaled
    down, is the reference for the person's pixels."""
    spec = load_annotations()["tiny"]
    path = Path(cases_dir) / spec["file"]
    image = read_image_file(path)
    source = read_image_file(Path(cases_dir) / spec["solo_from"])
    h, w = image.shape[:2]
    solo = _crop(source, spec["solo"])
    person = PersonRef("astronaut", (0, 0, w, h), solo=solo,
                       solo_box=(0, 0, solo.shape[1], solo.shape[0]))
    sample = _from_cache("cases", spec["file"], image, None, path)
    sample.people = [person]
    return sample


SMALL_SIDES = (32, 48, 64, 96, 128, 200)


def small_photos(portrait_samples: list[Sample], sides=SMALL_SIDES, count: int = 12) -> list[Sample]:
    """``count`` single-person portraits (evenly spaced) scaled down (``INTER_AREA``) to
    each long side in ``sides``; the truth is the true mask scaled the same way (area
    share >= 0.5)."""
    singles = [s for s in portrait_samples if single_person(s.truth)]
    step = max(1, len(singles) // count)
    samples = []
    for source in singles[::step][:count]:
        h, w = source.truth.shape
        for side in sides:
            scale = side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(source.image, size, interpolation=cv2.INTER_AREA)
            truth = cv2.resize(source.truth.astype(np.float32), size,
                               interpolation=cv2.INTER_AREA) >= 0.5
            samples.append(_from_cache("small", f"{source.name}@{side}", image, truth,
                                       source.image_path))
    return samples
