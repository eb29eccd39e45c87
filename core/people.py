"""People as instances: who was found, where, and which of them to keep.

A segmenter gives a soft mask of everyone; :class:`People` adds which pixels belong to whom
(``labels``: each pixel to the nearest person, so a person's soft edge stays theirs) and the
list of :class:`Person` (box, score, area), largest first. :func:`parse_selection` reads a
request's ``people=`` and :meth:`People.select` keeps the chosen ones' part of the mask.

``people=`` forms (every entry point takes the same):

- ``all`` (default): everyone;
- ``largest``: the largest person; ``N`` (a whole number): the N largest;
- ``index:I,J,...``: the people at those places of the reported list (0 = the largest);
- ``at:X,Y``: the person under the pixel (X, Y) (a click), or the nearest one within 2 % of
  the image's diagonal.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from core.errors import ParameterError

# Connected blobs of the mask smaller than this share of the image are not reported as
# people (speckles); they still stay in the mask and the matte.
MIN_PERSON_SHARE = 0.0005
CLICK_REACH = 0.02  # of the image diagonal


@dataclass(frozen=True)
class Person:
    """One person found in an image.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in pixels, ``x1`` and ``y1`` exclusive.
        score: how sure the segmenter is, in ``[0, 1]`` (the mean of the soft mask over the
            person when the backend gives no detection score).
        area: pixels where the mask is at least 0.5.
        selected: whether the output shows them (``people=``).
    """

    box: tuple[int, int, int, int]
    score: float
    area: int
    selected: bool = True

    def as_dict(self) -> dict:
        return {"box": list(self.box), "score": round(float(self.score), 4), "area": self.area,
                "selected": self.selected}


@dataclass(frozen=True)
class Selection:
    """A parsed ``people=``: ``kind`` is ``all``, ``largest`` (``count``), ``index``
    (``indices``) or ``at`` (``point``)."""

    kind: str = "all"
    count: int = 0
    indices: tuple[int, ...] = ()
    point: tuple[int, int] = (0, 0)

    @property
    def everyone(self) -> bool:
        return self.kind == "all"

    def as_param(self) -> str:
        """The ``people=`` text that :func:`parse_selection` reads back as this."""
        if self.kind == "largest":
            return "largest" if self.count == 1 else str(self.count)
        if self.kind == "index":
            return "index:" + ",".join(map(str, self.indices))
        if self.kind == "at":
            return f"at:{self.point[0]},{self.point[1]}"
        return "all"


EVERYONE = Selection()


def parse_selection(text) -> Selection:
    """Read a ``people=`` value (see the module docstring).

    Raises:
        ParameterError: anything else, with the forms that are accepted.
    """
    forms = "all, largest, N (the N largest), index:I,J,... or at:X,Y"
    value = str(text if text is not None else "all").strip().lower()
    try:
        if value in ("", "all"):
            return EVERYONE
        if value == "largest":
            return Selection("largest", count=1)
        if value.isdigit():
            if int(value) < 1:
                raise ValueError
            return Selection("largest", count=int(value))
        kind, _, rest = value.partition(":")
        numbers = tuple(int(v) for v in rest.split(","))
        if kind in ("index", "indices") and numbers and min(numbers) >= 0:
            return Selection("index", indices=numbers)
        if kind == "at" and len(numbers) == 2:
            return Selection("at", point=numbers)
    except ValueError:
        pass
    raise ParameterError(f"people must be one of {forms}; got {text!r}")


@dataclass
class People:
    """Everyone a segmenter found in one image.

    Attributes:
        mask: ``float32`` ``H x W`` in ``[0, 1]``, everyone's soft mask.
        people: :class:`Person` list, largest first.
        labels: ``int32`` ``H x W``: the index in ``people`` of the person each pixel belongs
            to (``-1``: nobody near); computed on first use when not given.
    """

    mask: np.ndarray
    people: list[Person] = field(default_factory=list)
    labels: np.ndarray | None = None

    @classmethod
    def from_mask(cls, mask: np.ndarray, min_share: float = MIN_PERSON_SHARE) -> "People":
        """People as the connected regions of ``mask >= 0.5`` (a backend with no instances
        of its own); each pixel belongs to the nearest region."""
        binary = (mask >= 0.5).astype(np.uint8)
        count, components, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        floor = max(1, int(min_share * mask.size))
        kept = sorted((label for label in range(1, count)
                       if stats[label, cv2.CC_STAT_AREA] >= floor),
                      key=lambda label: -stats[label, cv2.CC_STAT_AREA])
        people, seeds = [], np.zeros(mask.shape, np.int32)
        for index, label in enumerate(kept):
            x, y, w, h, area = (int(v) for v in stats[label])
            region = components == label
            seeds[region] = index + 1
            people.append(Person((x, y, x + w, y + h), float(mask[region].mean()), area))
        found = cls(mask, people)
        found._seeds = seeds  # labels are worked out only if a selection needs them
        return found

    @classmethod
    def from_instances(cls, masks: np.ndarray, scores) -> "People":
        """People from a backend's instance masks (``float32`` ``N x H x W``, most confident
        first) and scores: everyone's mask is their union (clipped sum), each pixel belongs
        to the instance most sure of it."""
        height, width = masks.shape[1:] if masks.ndim == 3 else (0, 0)
        if masks.ndim != 3 or len(masks) == 0:
            return cls(np.zeros((height, width), np.float32) if masks.ndim == 3 else masks)
        mask = np.clip(masks.sum(axis=0), 0.0, 1.0).astype(np.float32)
        owner = masks.argmax(axis=0).astype(np.int32)
        owner[masks.max(axis=0) < 0.1] = -1
        people = []
        for index, (instance, score) in enumerate(zip(masks, scores)):
            body = instance >= 0.5
            ys, xs = np.nonzero(body)
            if ys.size == 0:
                owner[owner == index] = -1
                people.append(Person((0, 0, 0, 0), float(score), 0))
                continue
            people.append(Person((int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                                  int(ys.max()) + 1), float(score), int(body.sum())))
        order = sorted(range(len(people)), key=lambda i: -people[i].area)
        remap = np.full(len(people) + 1, -1, np.int32)
        for new, old in enumerate(order):
            remap[old] = new
        labels = np.where(owner >= 0, remap[owner], -1).astype(np.int32)
        return cls(mask, [people[i] for i in order if people[i].area > 0], labels)

    def chosen(self, selection: Selection) -> list[int]:
        """Indices of the people ``selection`` keeps.

        Raises:
            ParameterError: an index past the list, or a point outside the image or far
                from everyone.
        """
        if selection.kind == "all":
            return list(range(len(self.people)))
        if selection.kind == "largest":
            return list(range(min(selection.count, len(self.people))))
        if selection.kind == "index":
            bad = [i for i in selection.indices if i >= len(self.people)]
            if bad:
                raise ParameterError(f"people=index:{bad[0]}: only {len(self.people)} "
                                     f"people were found (indices 0 to {len(self.people) - 1})")
            return sorted(set(selection.indices))
        x, y = selection.point
        height, width = self.mask.shape
        if not (0 <= x < width and 0 <= y < height):
            raise ParameterError(f"people=at:{x},{y} is outside the {width}x{height} image")
        labels = self._labels()
        if labels[y, x] >= 0:
            return [int(labels[y, x])]
        reach = CLICK_REACH * float(np.hypot(height, width))
        near = _nearest_within(labels, x, y, reach)
        if near is None:
            raise ParameterError(f"nobody at {x},{y} (people=at:X,Y picks the person under "
                                 "the point)", code="no_person_there")
        return [near]

    def select(self, selection: Selection) -> tuple[np.ndarray, list[Person]]:
        """The soft mask of the people ``selection`` keeps, and the whole list with their
        ``selected`` flags.

        Raises:
            ParameterError: see :meth:`chosen`.
        """
        keep = self.chosen(selection)
        people = [replace(p, selected=i in keep) for i, p in enumerate(self.people)]
        if len(keep) == len(self.people):
            return self.mask, people
        labels = self._labels()
        chosen_pixels = np.isin(labels, np.asarray(keep, np.int32))
        return np.where(chosen_pixels, self.mask, 0.0).astype(np.float32), people

    def _labels(self) -> np.ndarray:
        if self.labels is None:
            seeds = getattr(self, "_seeds", None)
            if seeds is None:
                seeds = People.from_mask(self.mask)._seeds
            self.labels = _nearest_seed(seeds, int(seeds.max()))
            self.labels[self.mask < 0.05] = -1  # nobody's: too faint for anyone to claim
        return self.labels


def _nearest_seed(seeds: np.ndarray, count: int) -> np.ndarray:
    """For every pixel, the index (``seeds - 1``) of the nearest non-zero seed; -1 when
    there is none."""
    if count == 0:
        return np.full(seeds.shape, -1, np.int32)
    if count == 1:
        return np.zeros(seeds.shape, np.int32)
    background = (seeds == 0).astype(np.uint8)
    _, nearest = cv2.distanceTransformWithLabels(background, cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    # Labels number the seed pixels (the zeros of ``background``) in row-major order.
    lookup = np.concatenate([[0], seeds[seeds > 0]]).astype(np.int32)
    return lookup[nearest] - 1


def _nearest_within(labels: np.ndarray, x: int, y: int, reach: float) -> int | None:
    r = int(np.ceil(reach))
    y0, y1 = max(0, y - r), min(labels.shape[0], y + r + 1)
    x0, x1 = max(0, x - r), min(labels.shape[1], x + r + 1)
    window = labels[y0:y1, x0:x1]
    ys, xs = np.nonzero(window >= 0)
    if ys.size == 0:
        return None
    d = np.hypot(ys + y0 - y, xs + x0 - x)
    best = int(np.argmin(d))
    return int(window[ys[best], xs[best]]) if d[best] <= reach else None
