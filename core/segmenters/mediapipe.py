"""Embedded person segmentation with MediaPipe (every model ships inside the wheel).

Two modes (constructor option ``mode``):

- ``"fast"``: the selfie segmentation model alone on the whole image (``model="general"``,
  256x256, or ``"landscape"``, 144x256). A few milliseconds a frame; made for people close
  to the camera, blobby on a whole body that is small in the frame.
- ``"accurate"`` (default): every person is found and segmented on their own, and the
  models are combined per person:

  1. :meth:`~core.segmenters.person_detection.PoseModels.find_people`: MediaPipe's pose
     detector finds the people (looking again with those found greyed out, then in
     square tiles of a wide or tall image), and the pose landmark model gives each one
     landmarks and a soft body mask (good on whole bodies); for the people kept (step 3)
     it is averaged with the mask of the mirrored image (``flip_average``).
  2. The selfie model runs on a crop around each person at its working size (the
     ``general`` model; detail on close-ups, clothes and hair) and on the whole image
     (the ``landscape`` model, for step 5).
  3. Everyone the detector finds on its first look is kept. People found only later
     (with the others greyed out, or in tiles) are kept when they are a main subject: at
     least ``main_subject_ratio`` of the biggest person's area or torso length, and seen
     by a selfie model (mean ``context_support`` over their body, the larger of the
     whole-image and the crop mask: with a close-up greyed out, the detector can imagine
     a big person in a blurred background); or, all
     three at once, they stand with the main subjects (within ``group_gap`` times their
     own size), on the same ground line (their lowest point no more than
     ``ground_tolerance`` of the image height above the main subjects' lowest point:
     people further back end higher up in the picture), and the selfie model, shown
     their neighbourhood (a crop three times their size), sees them as a person standing
     out (mean ``context_support`` over their body). So bystanders in a crowd behind the
     subject and passers-by stay background, and a group member whom the detector merged
     with a neighbour, or missed at first, is still found. The bystanders' bodies also
     keep step 5 from adding them back.
  4. Per person: a whole body (torso shorter than ``close_up_torso`` of the image height)
     takes the pose mask, nudged by the crop's selfie mask (``pose_weight``); a close-up
     takes the larger of the two (the pose mask is coarse there, the selfie mask sharp).
  5. People are merged with ``max``. Where the whole-image selfie mask finds a person far
     from everyone the pose model found (a person the detector missed), and that blob is
     as big as a main subject, the selfie mask is used there.

The mask stays soft (both models give probabilities), so the trimap's unknown band
follows the real uncertainty. See ``docs/segmentation.md`` for the figures.
"""
from __future__ import annotations

import logging
import threading

import cv2
import numpy as np

from core.errors import ParameterError
from core.segmenters import Segmenter

log = logging.getLogger(__name__)

MODES = ("accurate", "fast")
SELFIE_MODELS = ("general", "landscape")


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _box_around(body: np.ndarray, margin: float) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` of the true pixels of ``body``, grown by ``margin`` times the
    longer side and clipped to the image; ``None`` if ``body`` is empty."""
    ys, xs = np.nonzero(body)
    if ys.size == 0:
        return None
    height, width = body.shape
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    grow = margin * max(x1 - x0, y1 - y0)
    return (int(max(0, x0 - grow)), int(max(0, y0 - grow)),
            int(min(width, x1 + grow)), int(min(height, y1 + grow)))


class MediaPipeSegmenter(Segmenter):
    """Person segmentation from the models inside the mediapipe wheel.

    Args:
        mode: ``"accurate"`` (default: pose + selfie per person, all people) or ``"fast"``
            (selfie model on the whole image).
        model: the selfie model for ``fast`` mode, ``"general"`` or ``"landscape"``.
        max_people: at most this many people are segmented one by one (``accurate``).
        flip_average: also run the pose model on the mirrored image and average the two
            masks (``accurate``; on by default: +0.6 IoU points on dance-twirl and
            portraits for about 25 ms more per person at 854x480).
        main_subject_ratio, context_support, group_gap, ground_tolerance,
            close_up_torso, pose_weight, crop_margin, max_side: see the module docstring;
            ``max_side`` caps the long side the masks are combined at (the models work
            at 256 pixels, so larger images are combined at this size and scaled back).
    Raises:
        ValueError: an unknown mode or selfie model, or a ratio outside ``[0, 1]``.
    """

    name = "mediapipe"
    licence = "Apache-2.0 (the models inside the mediapipe wheel)"

    def __init__(self, mode: str = "accurate", model: str = "general", max_people: int = 6,
                 flip_average: bool = True, main_subject_ratio: float = 0.65,
                 context_support: float = 0.5, group_gap: float = 0.5,
                 ground_tolerance: float = 0.05, close_up_torso: float = 0.4, pose_weight: float = 0.7,
                 crop_margin: float = 0.3, max_side: int = 1280):
        import mediapipe as mp  # imported here: ~1 s, and only this backend needs it

        if mode not in MODES:
            raise ValueError(f"mediapipe mode must be one of {MODES}, got {mode!r}")
        if model not in SELFIE_MODELS:
            raise ValueError(f"mediapipe model must be 'general' or 'landscape', got {model!r}")
        for key, value in (("main_subject_ratio", main_subject_ratio),
                           ("context_support", context_support), ("pose_weight", pose_weight)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{key} must lie in [0, 1], got {value}")
        if int(max_people) < 1 or int(max_side) < 64:
            raise ValueError(f"max_people must be >= 1 and max_side >= 64, got "
                             f"{max_people} and {max_side}")
        self.mode = mode
        self.model = model
        self.max_people = int(max_people)
        self.flip_average = bool(flip_average)
        self.main_subject_ratio = float(main_subject_ratio)
        self.context_support = float(context_support)
        self.group_gap = float(group_gap)
        self.ground_tolerance = float(ground_tolerance)
        self.close_up_torso = float(close_up_torso)
        self.pose_weight = float(pose_weight)
        self.crop_margin = float(crop_margin)
        self.max_side = int(max_side)

        selfie = mp.solutions.selfie_segmentation.SelfieSegmentation
        # MediaPipe graphs are not re-entrant: one request at a time through all of them.
        self._lock = threading.Lock()
        if mode == "fast":
            self._selfie = selfie(model_selection=0 if model == "general" else 1)
            return
        from core.segmenters.person_detection import PoseModels

        self._selfie_general = selfie(model_selection=0)
        self._selfie_landscape = selfie(model_selection=1)
        self._pose = PoseModels()

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import mediapipe  # noqa: F401
        except ImportError as exc:
            return False, f"mediapipe is not installed ({exc})"
        return True, "embedded models from the mediapipe wheel"

    def segment(self, image: np.ndarray, *, max_people: int | None = None) -> np.ndarray:
        """Soft mask of all people (main subjects, in ``accurate`` mode).

        Args:
            image: ``uint8`` RGB ``H x W x 3``.
            max_people: look for at most this many people in this call (``accurate``
                mode; ``None``: the configured ``max_people``).
        Returns:
            ``float32`` ``H x W`` in ``[0, 1]``.
        Raises:
            ParameterError: ``max_people`` in ``fast`` mode (the selfie model does not tell
                people apart), or not a positive number.
        """
        if max_people is not None:
            if self.mode == "fast":
                raise ParameterError("max_people needs people told apart: use mediapipe "
                                     "mode 'accurate' (MEDIAPIPE_MODE) or maskrcnn")
            if int(max_people) < 1:
                raise ParameterError(f"max_people must be a positive whole number, got {max_people}")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 H x W x 3, got {image.dtype} {image.shape}")
        image = np.ascontiguousarray(image)
        if self.mode == "fast":
            with self._lock:
                mask = self._selfie.process(image).segmentation_mask
            if mask is None:
                return np.zeros(image.shape[:2], np.float32)
            return np.clip(mask, 0.0, 1.0).astype(np.float32, copy=False)

        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        work = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            work = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        mask = self._segment_accurate(work, int(max_people or self.max_people))
        if scale < 1.0:
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(mask, 0.0, 1.0).astype(np.float32, copy=False)

    # -- accurate mode ------------------------------------------------------------------

    def _selfie_on(self, model, image: np.ndarray) -> np.ndarray:
        mask = model.process(np.ascontiguousarray(image)).segmentation_mask
        if mask is None:
            return np.zeros(image.shape[:2], np.float32)
        return mask.astype(np.float32, copy=False)

    def _segment_accurate(self, image: np.ndarray, max_people: int) -> np.ndarray:
        height, width = image.shape[:2]
        with self._lock:
            selfie_landscape = self._selfie_on(self._selfie_landscape, image)
            people = self._pose.find_people(image, max_people)
            kept = self._main_subjects(image, people, selfie_landscape)
            bystanders = [p for p in people if not any(p is k for k in kept)]
            people = kept
            if self.flip_average:
                for person in people:
                    person.mask = self._pose.mirror_average(image, person)
            crops = []
            for person in people:
                box = _box_around(person.mask > 0.5, self.crop_margin)
                x0, y0, x1, y1 = box
                crops.append((box, self._selfie_on(self._selfie_general,
                                                   image[y0:y1, x0:x1])))
        merged = np.zeros((height, width), np.float32)
        for person, ((x0, y0, x1, y1), crop_mask) in zip(people, crops):
            selfie = np.zeros((height, width), np.float32)
            selfie[y0:y1, x0:x1] = crop_mask
            if person.torso_fraction(height, width) < self.close_up_torso:
                combined = self.pose_weight * person.mask + (1.0 - self.pose_weight) * selfie
            else:
                combined = np.maximum(person.mask, selfie)
            np.maximum(merged, combined, out=merged)
        biggest = max((p.area for p in people), default=0)
        explained = merged > 0.5
        for person in bystanders:
            explained |= person.mask > 0.5
        return self._add_missed_people(merged, selfie_landscape, explained, biggest)

    def _main_subjects(self, image: np.ndarray, people, selfie_landscape: np.ndarray):
        """The people who are main subjects (see the module docstring, step 3)."""
        if not people:
            return []
        height, width = image.shape[:2]
        biggest = max(p.area for p in people)
        tallest = max(p.torso_fraction(height, width) for p in people)
        kept, doubtful = [], []
        for person in people:
            ratio = person.area / biggest
            scale = person.torso_fraction(height, width) / tallest if tallest > 0 else 1.0
            if person.look == 1:
                kept.append(person)
            elif max(ratio, scale) >= self.main_subject_ratio:
                # With the first people greyed out, the detector sometimes sees a person in
                # the background of a close-up: a selfie model must agree.
                if self._selfie_support(image, person, selfie_landscape) >= self.context_support:
                    kept.append(person)
            else:
                doubtful.append(person)
        if not doubtful or not kept:
            return kept  # no main subject (all seen only later, none confirmed): nobody to stand with
        subjects = np.zeros((height, width), np.uint8)
        for person in kept:
            subjects |= (person.mask > 0.5).astype(np.uint8)
        gap = cv2.distanceTransform(1 - subjects, cv2.DIST_L2, 3)
        ground = np.flatnonzero(subjects.any(axis=1)).max()  # the main subjects' lowest row
        for person in doubtful:
            body = person.mask > 0.5
            x0, y0, x1, y1 = _box_around(body, 0.0)
            if gap[body].min() > self.group_gap * max(x1 - x0, y1 - y0):
                continue  # small, and away from the main subjects: a passer-by
            if ground - (y1 - 1) > self.ground_tolerance * height:
                continue  # ends higher up than the main subjects: further back, a bystander
            if self._crop_support(image, body, 1.0) >= self.context_support:
                kept.append(person)
        return kept

    def _crop_support(self, image: np.ndarray, body: np.ndarray, margin: float) -> float:
        """Mean of the general selfie model's mask over ``body``, the model shown a crop
        around it (``margin`` times its longer side on each side)."""
        x0, y0, x1, y1 = _box_around(body, margin)
        crop = self._selfie_on(self._selfie_general, image[y0:y1, x0:x1])
        return float(crop[body[y0:y1, x0:x1]].mean())

    def _selfie_support(self, image: np.ndarray, person, selfie_landscape: np.ndarray) -> float:
        """How much the selfie models see ``person``: the larger of the whole-image
        (landscape) mask and their crop's (general) mask, averaged over their body."""
        body = person.mask > 0.5
        return max(float(selfie_landscape[body].mean()),
                   self._crop_support(image, body, self.crop_margin))

    def _add_missed_people(self, merged: np.ndarray, selfie: np.ndarray, explained: np.ndarray,
                           biggest: int) -> np.ndarray:
        """Step 5: selfie blobs away from the people found (``explained``: the main subjects'
        and the bystanders' bodies), if they are main-subject size."""
        height, width = merged.shape
        near = np.zeros((height, width), bool)
        if explained.any():
            reach = max(1, int(0.02 * max(height, width)))
            near = cv2.dilate(explained.astype(np.uint8), _disk(reach)) > 0
        far = ((selfie > 0.5) & ~near).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(far, connectivity=8)
        if count <= 1:
            return merged
        areas = stats[1:, cv2.CC_STAT_AREA]
        threshold = self.main_subject_ratio * max(biggest, int(areas.max()))
        keep_labels = 1 + np.flatnonzero(areas >= threshold)
        if keep_labels.size == 0:
            return merged
        keep = np.isin(labels, keep_labels).astype(np.uint8)
        keep = (cv2.dilate(keep, _disk(3)) > 0) & ~near
        return np.where(keep, selfie, merged).astype(np.float32, copy=False)

    def describe(self) -> dict:
        facts = {**super().describe(), "mode": self.mode}
        if self.mode == "fast":
            facts["model"] = self.model
        else:
            facts.update(models="pose detection + pose landmarks (full) + selfie "
                                "(general, landscape)",
                         max_people=self.max_people, flip_average=self.flip_average)
        return facts
