"""The evaluation data sets (outside the repository, see ``/work/shared/data/README.md``).

Each loader returns a list of :class:`Sample` whose arrays load on first use, so listing
a data set is cheap and quick mode reads only the files it scores.

- ``alphamatting``: image, true alpha (``float32`` in [0, 1]), trimaps ``trimap1`` / ``trimap2``;
- ``davis`` (the ``dance-twirl`` sequence) and ``portraits``: image and a binary person mask,
  resized to the image with nearest neighbour where it is smaller.
"""
from __future__ import annotations

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


@dataclass
class Sample:
    """One scored item; ``image`` (uint8 RGB) and ``truth`` load lazily."""

    dataset: str
    name: str
    image_path: Path
    truth_path: Path
    trimap_paths: dict = field(default_factory=dict)
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
        """Forget the loaded arrays (keeps memory flat over 145 portraits)."""
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
