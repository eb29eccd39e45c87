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
     least ``main_subject_ratio`` of the biggest person's area or of the longest torso
     (among the whole bodies when there are any: a close-up's hips are extrapolated off
     the image), and seen by a selfie model (mean ``context_support`` over their body,
     the larger of the whole-image and the crop mask: with a close-up greyed out, the
     detector can imagine a big person in a blurred background); or, all
     three at once, they stand with the main subjects (within ``group_gap`` times their
     own size), on the same ground line (their lowest point no more than
     ``ground_tolerance`` of the image height above the main subjects' lowest point:
     people further back end higher up in the picture), and the selfie model, shown
     their neighbourhood (a crop three times their size), sees them as a person standing
     out (mean ``context_support`` over their body). So bystanders in a crowd behind the
     subject and passers-by stay background, and a group member whom the detector merged
     with a neighbour, or missed at first, is still found. The bystanders' bodies also
     keep step 5 from adding them back.
  3b. People too small for the pose detector (seated in a classroom, a small person
     beside close-ups) are found by their face: the wheel's full-range face detector on
     the image and on tiles half its short side (:mod:`core.segmenters.faces`). A face
     the kept masks are not sure over (mean under ``face_covered``, 0.8, on the face
     box), at least ``face_to_subject`` (0.1) of the tallest kept person's height (or
     ``face_to_subject_ground`` (0.03) when their body ends on the kept people's ground
     line), gets a body: the general selfie model shown a square around the face,
     keeping the region connected to it. A later-look pose person whose body covers two
     or more faces is dropped (a band the landmark model draws across people seated
     side by side); with nobody on the whole-image looks, a small person found only in
     a tile must have a face (an empty scene's launch tower).
  4. Per person: a whole body (torso shorter than ``close_up_torso`` of the image height,
     legs seen) takes the pose mask, nudged by the crop's selfie mask (``pose_weight``);
     a close-up, or an upper body cut by the frame (knees and ankles not seen), takes
     the larger of the two (the pose mask is coarse there, the selfie mask sharp), the
     selfie mask only on its regions touching the pose body. A crop that takes in other
     people is padded to a square for the selfie model, which squeezes its input.
  5. People are merged with ``max``. Where the whole-image selfie mask finds a person far
     from everyone the pose model found (a person the detector missed), and that blob is
     as big as a main subject, the selfie mask is used there. Last, small pieces of mask
     holding no person's sure core (under 5 % of the smallest person's region: a flag
     beside a close-up) are lowered under 0.5.

The mask stays soft (both models give probabilities); the default trimap
(:func:`core.trimap.decided_trimap`) decides it at 0.5 and leaves only a thin band along
each person's outline to matting. Photos under 256 pixels are segmented scaled up to 256;
under ``min_side`` (32) pixels :class:`ImageTooSmall` is raised. See
``docs/segmentation.md`` for the figures.
"""
from __future__ import annotations

import logging
import threading

import cv2
import numpy as np

from core.errors import ParameterError
from core.images import ImageError
from core.people import People
from core.segmenters import Segmenter

log = logging.getLogger(__name__)

MODES = ("accurate", "fast")
# The models see 256 pixels at most (the selfie model's input, the pose landmark model's
# crop): a photo smaller than that is scaled up to it first (bicubic), which finds the
# person in more thumbnails (portraits scaled to 48 px: mean IoU 0.83 -> 0.87; 32 px
# 0.47 -> 0.77). Below MIN_SIDE nobody can be seen reliably: the segmenter refuses.
WORK_SIDE = 256
# PoseModels.find_people numbers its whole-image looks 1..3 (max_rounds) and the tile look 4.
TILE_LOOK_BEFORE = 3
MIN_SIDE = 32


class ImageTooSmall(ImageError):
    """The photo is smaller than the segmenter can find people in (a 4xx / a non-zero
    exit for the caller, never an empty cutout)."""
SELFIE_MODELS = ("general", "landscape")


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def mediapipe_available() -> tuple[bool, str]:
    """Whether the mediapipe wheel (and the models inside it) can be imported here."""
    try:
        import mediapipe  # noqa: F401
    except ImportError as exc:
        return False, f"mediapipe is not installed ({exc})"
    return True, "embedded models from the mediapipe wheel"


def _instance_labels(mask: np.ndarray, instances: list[np.ndarray]) -> np.ndarray:
    """Whose each pixel is (``int32`` ``H x W``; ``-1``: nobody's): the instance surest of
    it; person pixels no instance claims (a person the detectors missed, added from the
    whole-image selfie mask) are people of their own, one per connected region."""
    if instances:
        stack = np.stack(instances)
        owner = stack.argmax(axis=0).astype(np.int32)
        owner[stack.max(axis=0) < 0.05] = -1
    else:
        owner = np.full(mask.shape, -1, np.int32)
    orphans = ((mask >= 0.5) & (owner < 0)).astype(np.uint8)
    count, regions = cv2.connectedComponents(orphans, connectivity=8)
    if count > 1:
        owner[orphans > 0] = len(instances) + regions[orphans > 0] - 1
    owner[mask < 0.05] = -1
    return owner


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


def _has_face(body: np.ndarray, centres) -> bool:
    """Whether a face centre ``(x, y)`` lies in ``body`` 's bounding box (grown by 10 %)."""
    box = _box_around(body, 0.1)
    if box is None:
        return False
    x0, y0, x1, y1 = box
    return any(x0 <= x < x1 and y0 <= y < y1 for x, y in centres)


def _drop_strays(mask: np.ndarray, cores: list, fraction: float = 0.05) -> np.ndarray:
    """``mask`` less its stray regions: 8-connected regions of ``mask > 0.5`` that hold no
    person's core (``cores``: bool masks where a person's own mask is sure) and are smaller
    than ``fraction`` of the smallest person region that does (a flag's pieces beside a
    close-up). They are lowered to just under 0.5, so the decided trimap calls them
    background; a region the whole-image selfie model added (someone the detector missed)
    is as big as a main subject and stays."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        (mask > 0.5).astype(np.uint8), connectivity=8)
    if count <= 2 or not cores:
        return mask
    core = np.zeros(mask.shape, bool)
    for c in cores:
        core |= c
    holding = np.zeros(count, bool)
    holding[np.unique(labels[core & (labels > 0)])] = True
    holding[0] = False
    if not holding.any():
        return mask
    areas = stats[:, cv2.CC_STAT_AREA]
    smallest = areas[holding].min()
    stray = np.flatnonzero(~holding & (areas < fraction * smallest))
    stray = stray[stray > 0]
    if stray.size == 0:
        return mask
    out = mask.copy()
    where = np.isin(labels, stray)
    out[where] = np.minimum(out[where], 0.45)
    return out


def _attached(soft: np.ndarray, body: np.ndarray) -> np.ndarray:
    """``soft`` kept only on its regions (``soft > 0.5``, 8-connected, grown by 2 px for
    the soft edge) that touch ``body``: the selfie model shown a crop around one person
    also marks a flag or a neighbour's arm nearby, which are not this person."""
    count, labels = cv2.connectedComponents((soft > 0.5).astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(soft)
    touching = np.unique(labels[body & (labels > 0)])
    keep = cv2.dilate(np.isin(labels, touching).astype(np.uint8), _disk(2)) > 0
    return np.where(keep, soft, 0.0).astype(np.float32, copy=False)


class MediaPipeSegmenter(Segmenter):
    """Person segmentation from the models inside the mediapipe wheel.

    Args:
        mode: ``"accurate"`` (default: pose + selfie per person, all people) or ``"fast"``
            (selfie model on the whole image).
        model: the selfie model for ``fast`` mode, ``"general"`` or ``"landscape"``.
        max_people: at most this many people are segmented one by one by the pose model
            (``accurate``; 32 by default, was 6: a setting, not a limit of the models).
        find_faces, face_to_subject, face_to_subject_ground: look for people by their
            face too (step 3b in the module docstring).
        flip_average: also run the pose model on the mirrored image and average the two
            masks (``accurate``; on by default: +0.6 IoU points on dance-twirl and
            portraits for about 25 ms more per person at 854x480).
        main_subject_ratio, context_support, group_gap, ground_tolerance,
            close_up_torso, pose_weight, crop_margin, max_side: see the module docstring;
            ``max_side`` caps the long side the masks are combined at (the models work
            at 256 pixels, so larger images are combined at this size and scaled back);
            photos whose long side is under 256 pixels are scaled up to 256 first.
        min_side: photos whose long side is shorter are refused (:class:`ImageTooSmall`).
    Raises:
        ValueError: an unknown mode or selfie model, or a ratio outside ``[0, 1]``.
    """

    name = "mediapipe"
    licence = "Apache-2.0 (the models inside the mediapipe wheel)"

    def __init__(self, mode: str = "accurate", model: str = "general", max_people: int = 32,
                 flip_average: bool = True, main_subject_ratio: float = 0.65,
                 context_support: float = 0.5, group_gap: float = 0.5,
                 ground_tolerance: float = 0.05, close_up_torso: float = 0.4, pose_weight: float = 0.7,
                 crop_margin: float = 0.3, max_side: int = 1280, min_side: int = MIN_SIDE,
                 find_faces: bool = True, face_to_subject: float = 0.1,
                 face_to_subject_ground: float = 0.03, face_covered: float = 0.8):
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
        self.min_side = int(min_side)
        self.find_faces = bool(find_faces)
        self.face_to_subject = float(face_to_subject)
        self.face_to_subject_ground = float(face_to_subject_ground)
        self.face_covered = float(face_covered)

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
        if self.find_faces:
            from core.segmenters.faces import FaceFinder

            self._faces = FaceFinder()

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return mediapipe_available()

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
            ImageTooSmall: the long side is under ``min_side`` (32) pixels.
            ValueError: not a uint8 RGB image.
        """
        return self._run(image, max_people, with_labels=False)[0]

    def find_people(self, image: np.ndarray, *, max_people: int | None = None) -> People:
        """Everyone as instances (see :meth:`core.segmenters.Segmenter.find_people`): in
        ``accurate`` mode each pixel belongs to the person whose own mask (pose + selfie,
        or found by their face) is surest of it, so people standing together stay apart;
        ``fast`` mode has only the selfie mask's connected regions.

        Raises:
            As :meth:`segment`.
        """
        if self.mode == "fast":
            return People.from_mask(self.segment(image, max_people=max_people))
        mask, labels = self._run(image, max_people, with_labels=True)
        return People.from_labels(mask, labels)

    def _run(self, image: np.ndarray, max_people: int | None,
             with_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``(mask, labels)`` at the image's size (``labels`` only when asked for)."""
        if max_people is not None:
            if self.mode == "fast":
                raise ParameterError("max_people needs people told apart: use mediapipe "
                                     "mode 'accurate' (MEDIAPIPE_MODE) or maskrcnn")
            if int(max_people) < 1:
                raise ParameterError(f"max_people must be a positive whole number, got {max_people}")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 H x W x 3, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if max(height, width) < self.min_side:
            raise ImageTooSmall(
                f"the photo is {width}x{height} pixels: people can be found from "
                f"{self.min_side} pixels on the long side up; use a larger photo")
        image = np.ascontiguousarray(image)
        if self.mode == "fast":
            with self._lock:
                mask = self._selfie.process(image).segmentation_mask
            if mask is None:
                return np.zeros(image.shape[:2], np.float32), None
            return np.clip(mask, 0.0, 1.0).astype(np.float32, copy=False), None

        scale = min(1.0, self.max_side / max(height, width))
        if max(height, width) < WORK_SIDE:
            scale = WORK_SIDE / max(height, width)
        work = image
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            work = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1.0
                              else cv2.INTER_CUBIC)
        mask, instances = self._segment_accurate(work, int(max_people or self.max_people))
        labels = _instance_labels(mask, instances) if with_labels else None
        if scale != 1.0:
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR
                              if scale < 1.0 else cv2.INTER_AREA)
            if labels is not None:
                labels = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
        return np.clip(mask, 0.0, 1.0).astype(np.float32, copy=False), labels

    # -- accurate mode ------------------------------------------------------------------

    def _selfie_on(self, model, image: np.ndarray) -> np.ndarray:
        mask = model.process(np.ascontiguousarray(image)).segmentation_mask
        if mask is None:
            return np.zeros(image.shape[:2], np.float32)
        return mask.astype(np.float32, copy=False)

    def _selfie_square(self, model, image: np.ndarray, box) -> np.ndarray:
        """The selfie model's mask of ``image[box]``, padded with grey to a square first
        when the crop is far from square: the model squeezes its input to 256x256, and a
        close-up whose crop is made wide by neighbours comes out thin and grey (the
        group case's middle person: 0.79 -> 0.97 of alone)."""
        x0, y0, x1, y1 = box
        crop = image[y0:y1, x0:x1]
        h, w = crop.shape[:2]
        if abs(h - w) <= 0.1 * max(h, w):
            return self._selfie_on(model, crop)
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        padded = cv2.copyMakeBorder(crop, top, side - h - top, left, side - w - left,
                                    cv2.BORDER_CONSTANT, value=(127, 127, 127))
        return self._selfie_on(model, padded)[top:top + h, left:left + w]

    def _segment_accurate(self, image: np.ndarray,
                          max_people: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(mask, instances)``: everyone's soft mask, and each person's own (``float32``
        ``H x W``: pose + selfie per person, then those found by their face)."""
        height, width = image.shape[:2]
        with self._lock:
            selfie_landscape = self._selfie_on(self._selfie_landscape, image)
            people = self._pose.find_people(image, max_people)
            kept = self._main_subjects(image, people, selfie_landscape)
            face_masks = []
            if self.find_faces:
                kept, face_masks = self._people_by_face(image, people, kept)
            bystanders = [p for p in people if not any(p is k for k in kept)]
            people = kept
            if self.flip_average:
                for person in people:
                    person.mask = self._pose.mirror_average(image, person)
            crops = []
            bodies = [person.mask > 0.5 for person in people]
            for index, person in enumerate(people):
                box = _box_around(bodies[index], self.crop_margin)
                x0, y0, x1, y1 = box
                # A crop that takes in other people (a close-up in a group) is shown to
                # the selfie model undistorted; a lone person's crop as it is (padding
                # a wide close-up's crop with grey lowers portraits by 0.2 points).
                others = sum(int(np.count_nonzero(b[y0:y1, x0:x1]))
                             for j, b in enumerate(bodies) if j != index)
                if others > 0.05 * (x1 - x0) * (y1 - y0):
                    crop_mask = self._selfie_square(self._selfie_general, image, box)
                else:
                    crop_mask = self._selfie_on(self._selfie_general, image[y0:y1, x0:x1])
                crops.append((box, crop_mask))
        merged = np.zeros((height, width), np.float32)
        instances = []
        for person, ((x0, y0, x1, y1), crop_mask) in zip(people, crops):
            selfie = np.zeros((height, width), np.float32)
            selfie[y0:y1, x0:x1] = crop_mask
            # A whole body: short torso for the image, and legs seen (an upper body cut by
            # the frame is a close-up, however the landmark model extrapolates its hips).
            if person.torso_fraction(height, width) < self.close_up_torso and \
                    person.legs_seen():
                combined = self.pose_weight * person.mask + (1.0 - self.pose_weight) * selfie
            else:
                combined = np.maximum(person.mask, _attached(selfie, person.mask > 0.5))
            np.maximum(merged, combined, out=merged)
            instances.append(combined)
        for face_mask in face_masks:
            np.maximum(merged, face_mask, out=merged)
            instances.append(face_mask)
        biggest = max((p.area for p in people), default=0)
        explained = merged > 0.5
        for person in bystanders:
            explained |= person.mask > 0.5
        merged = self._add_missed_people(merged, selfie_landscape, explained, biggest)
        # Small pieces holding nobody's sure core (a flag beside a close-up) are decided
        # background here: the decided trimap would otherwise make them opaque.
        cores = [person.mask > 0.8 for person in people] + [m > 0.8 for m in face_masks]
        return _drop_strays(merged, cores), instances

    def _people_by_face(self, image: np.ndarray, people, kept) -> tuple[list, list]:
        """Step 3b: people the pose detector missed or left as bystanders, found by their
        face (full-range face detector on tiles, :class:`~core.segmenters.faces.FaceFinder`).

        A face counts when the kept people's masks are not sure over it (mean under
        ``face_covered``, 0.8, over the face box) and it is at least
        ``face_to_subject`` times as wide as the tallest kept person is tall (a seated
        classmate's face is 0.15-0.25 of the front-row person's visible height; an
        audience face behind a standing dancer under 0.07). The body is then found by
        the pose detector shown a square around the face (:func:`body_box`), upscaled
        by the detector itself: the detection whose face box matches is segmented on
        the whole image; a bystander already covering the face is taken as is.

        A person found only on a later look whose body covers two or more faces is
        dropped first: the pose landmark model, given a detection that merged people
        seated side by side, returns one band across their heads and shoulders.

        Returns:
            ``(kept, masks)``: the kept people less such merges, and one soft mask
            (``float32`` ``H x W``) per person found by face.
        """
        from core.segmenters.faces import body_box

        height, width = image.shape[:2]
        faces = self._faces.find(image)
        centres = [(min(width - 1, int(f.centre[0])), min(height - 1, int(f.centre[1])))
                   for f in faces]
        kept = [p for p in kept if p.look == 1 or
                sum(p.mask[y, x] > 0.5 for x, y in centres) < 2]
        if not any(p.look == 1 for p in kept):
            # Nobody on the detector's whole-image looks: a small person (under 5 % of
            # the image) found only in a tile needs a face too (a launch tower, seen as a
            # person in a tile of an empty scene).
            kept = [p for p in kept if p.look <= TILE_LOOK_BEFORE or
                    p.area >= 0.05 * height * width or _has_face(p.mask > 0.5, centres)]
        tallest, ground = 0, -1
        for person in kept:
            body = person.mask > 0.5
            rows = np.flatnonzero(body.any(axis=1))
            if rows.size:
                tallest = max(tallest, int(rows[-1] - rows[0] + 1))
                ground = max(ground, int(rows[-1]))
        # With nobody kept, a face must be a tenth of the image tall to count (a false
        # 10 px "face" on a 160 px launch-pad thumbnail is not a subject).
        reference = tallest if tallest else height
        # A face counts as someone's when the kept masks are sure over it: a later look's
        # band of grey across a seated row covers a face's centre but not the face.
        sure = np.zeros((height, width), np.float32)
        for person in kept:
            np.maximum(sure, person.mask, out=sure)
        found = []
        for face in faces:
            cx, cy = face.centre
            fx0, fy0, fx1, fy1 = (int(round(v)) for v in face.box)
            over_face = sure[max(0, fy0):max(fy0 + 1, fy1), max(0, fx0):max(fx0 + 1, fx1)]
            if over_face.size and float(over_face.mean()) >= self.face_covered:
                continue
            if face.width < self.face_to_subject_ground * reference:
                continue
            mask = self._segment_face_body(image, face, body_box(face, width, height))
            if mask is None:
                continue
            if face.width < self.face_to_subject * reference:
                # Smaller: kept only standing on the main subjects' ground line (a small
                # person beside them, not someone further back: see step 3).
                rows = np.flatnonzero((mask > 0.5).any(axis=1))
                if ground < 0 or ground - rows[-1] > self.ground_tolerance * height:
                    continue
            found.append(mask)
            np.maximum(sure, mask, out=sure)
        return kept, found

    def _segment_face_body(self, image: np.ndarray, face, box) -> np.ndarray | None:
        """Soft mask of the person whose face is ``face``: the general selfie model shown
        the square ``box`` around it (a head-and-shoulders view, what the model is made
        for), keeping the region connected to the face; ``None`` if it sees nobody there."""
        height, width = image.shape[:2]
        x0, y0, x1, y1 = box
        crop = self._selfie_on(self._selfie_general, image[y0:y1, x0:x1])
        cx, cy = face.centre
        fx, fy = min(x1 - x0 - 1, max(0, int(cx) - x0)), min(y1 - y0 - 1, max(0, int(cy) - y0))
        count, labels = cv2.connectedComponents((crop > 0.5).astype(np.uint8), connectivity=8)
        label = labels[fy, fx]
        if label == 0:
            return None
        # Keep the soft edge: the region grown by a few pixels, the model's own values.
        region = cv2.dilate((labels == label).astype(np.uint8), _disk(2)) > 0
        mask = np.zeros((height, width), np.float32)
        mask[y0:y1, x0:x1] = np.where(region, crop, 0.0)
        return mask

    def _main_subjects(self, image: np.ndarray, people, selfie_landscape: np.ndarray):
        """The people who are main subjects (see the module docstring, step 3)."""
        if not people:
            return []
        height, width = image.shape[:2]
        biggest = max(p.area for p in people)
        torsos = [p.torso_fraction(height, width) for p in people]
        # Scale against the whole bodies when there are any: a close-up's torso (hips
        # extrapolated off the image) would make anyone beside it look far away.
        whole = [t for t in torsos if t < self.close_up_torso]
        tallest = max(whole) if whole else max(torsos)
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
