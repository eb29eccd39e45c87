"""Person segmentation for video that follows people from frame to frame (MediaPipe's pose
models, every model inside the wheel).

The photo segmenter (:class:`core.segmenters.mediapipe.MediaPipeSegmenter`, ``accurate``
mode) finds everyone anew in every image: several looks of the pose detector, a landmark
run per person and per mirror image, selfie models on crops and on the whole image. In a
video the people of one frame are nearly where they were in the last one, so this one
does what MediaPipe's own single-person pose solution does in its tracking mode
(``PoseLandmarkCpu``: the landmarks of one frame give the region of interest of the next),
for every person at once:

1. **Follow.** Each person followed (a :class:`Track`) has a region of interest (ROI) from
   the last frame's auxiliary landmarks (``PoseLandmarksToRoi``, MediaPipe's own
   subgraph). The pose landmark model runs once per person on that ROI, cropped, rotated
   and scaled to its 256x256 working size (``PoseLandmarkByRoiCpu``), and gives the
   person's landmarks, their soft body mask in image coordinates, and the next ROI. When
   the model says nobody is in the ROI any more, the person is lost (left the frame, or
   hidden).
2. **Discover.** Every ``detect_every`` frames, on the first frame, and on any frame where
   someone was lost, the pose detector looks at the frame with everyone followed greyed
   out (and, on images wider or taller than 4:3, in square tiles along the long side, as
   :meth:`~core.segmenters.person_detection.PoseModels.find_people` does). A detection
   whose body mostly repeats someone followed is dropped. With nobody followed yet,
   everyone the whole-frame look finds is kept (the accurate photo mode's first look);
   otherwise a newcomer must be a main subject: at least ``main_subject_ratio`` of the
   biggest person followed by torso length (and its square by mask area), and seen by the selfie
   model (mean ``context_support`` over their body, shown a crop around them), as in the
   accurate photo mode. So the seated audience behind a dancer stays background, and a
   person walking into a room with others in it is kept once their torso is in.
3. **Combine.** A close-up (torso at least ``close_up_torso`` of the frame's height: the
   pose mask is coarse there) also gets the general selfie model on a crop around them,
   and takes the larger of the two masks, as the accurate photo mode does. People are
   merged with ``max``.

There is no limit on the number of people (``max_people`` keeps the most prominent when
given). Cost per frame: one landmark run per person (~14 ms on one core of the project's
machine), plus a selfie run per close-up, plus a detector run every ``detect_every``
frames; the accurate photo mode spends 3-6 model runs per person and frame.

The tracks live in the video's :class:`~core.temporal.VideoState` (``state.tracking``),
not in the segmenter, so one segmenter serves many videos (one at a time: the MediaPipe
graphs are not re-entrant, a lock serialises calls). Without a state (a photo), every
call discovers the people from scratch.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from core.errors import ParameterError
from core.segmenters import Segmenter

log = logging.getLogger(__name__)

# PoseLandmarkByRoiCpu with the ROI as an input, and MediaPipe's landmarks-to-ROI subgraph
# for the next frame (the graph ``PoseLandmarkCpu`` wires the same two for one person).
_FOLLOW_GRAPH = """
input_stream: "image"
input_stream: "roi"
input_side_packet: "model_complexity"
input_side_packet: "enable_segmentation"
output_stream: "landmarks"
output_stream: "next_roi"
output_stream: "segmentation_mask"
node {
  calculator: "ImagePropertiesCalculator"
  input_stream: "IMAGE:image"
  output_stream: "SIZE:image_size"
}
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  output_stream: "LANDMARKS:landmarks"
  output_stream: "AUXILIARY_LANDMARKS:auxiliary_landmarks"
  output_stream: "SEGMENTATION_MASK:segmentation_mask"
}
node {
  calculator: "PoseLandmarksToRoi"
  input_stream: "LANDMARKS:auxiliary_landmarks"
  input_stream: "IMAGE_SIZE:image_size"
  output_stream: "ROI:next_roi"
}
"""

# A pose detection's ROI, as PoseLandmarkCpu computes it for a newly detected person.
_DETECTION_ROI_GRAPH = """
input_stream: "image"
input_stream: "detection"
output_stream: "roi"
node {
  calculator: "ImagePropertiesCalculator"
  input_stream: "IMAGE:image"
  output_stream: "SIZE:image_size"
}
node {
  calculator: "PoseDetectionToRoi"
  input_stream: "DETECTION:detection"
  input_stream: "IMAGE_SIZE:image_size"
  output_stream: "ROI:roi"
}
"""


def _box_around(body: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the true pixels of ``body`` (not empty), grown by ``margin``
    times the longer side and clipped to the image."""
    rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    grow = margin * max(x1 - x0, y1 - y0)
    height, width = body.shape
    return (int(max(0, x0 - grow)), int(max(0, y0 - grow)),
            int(min(width, x1 + grow)), int(min(height, y1 + grow)))


@dataclass
class Track:
    """One person followed from frame to frame.

    Attributes:
        id: unique within the video, in order of discovery.
        person: the last frame's :class:`~core.segmenters.person_detection.Person`
            (soft body mask ``float32`` ``H x W`` in ``[0, 1]``, landmarks).
        roi: the ROI for the next frame (MediaPipe ``NormalizedRect``).
        since: the frame index where the person was first found.
    """

    id: int
    person: object
    roi: object
    since: int


@dataclass
class Tracks:
    """What :class:`TrackingSegmenter` carries from frame to frame of one video (kept in
    ``VideoState.tracking``)."""

    owner: int                     # id() of the segmenter that made it
    tracks: list = field(default_factory=list)
    frame: int = 0                 # frames seen
    next_id: int = 0
    last_discovery: int = -1       # frame index of the last discovery
    shape: tuple = ()


class TrackingSegmenter(Segmenter):
    """Video person segmentation that follows people (see the module docstring).

    Args:
        detect_every: look for new people every this many frames (and whenever someone is
            lost); ``1`` looks on every frame.
        main_subject_ratio: a person found while others are followed is kept when their
            torso length is at least this share of the biggest person's (and their mask
            area at least its square).
        close_up_torso: torso length (share of the frame height) from which a person is a
            close-up and also gets the selfie model on a crop.
        crop_margin: the selfie crop around a person, as a share of their longer side.
        context_support: a newcomer who is not on the first look of the first frame must
            also be seen by the selfie model: its mean over their body, shown a crop
            around them, at least this.
        tiles: also look in square tiles of a wide or tall frame when discovering (small
            people; a few detector runs more per discovery).
        min_detection_score: pose detections below this are ignored.
        flip_average: also run the landmark model on the mirror image and average the two
            masks (a second landmark run per person and frame).
    Raises:
        ValueError: an option out of range.
    """

    name = "mediapipe-tracking"
    follows_people = True  # LocalPersonSource hands it the video's state

    def __init__(self, detect_every: int = 8, main_subject_ratio: float = 0.65,
                 close_up_torso: float = 0.4, crop_margin: float = 0.3,
                 context_support: float = 0.5, tiles: bool = True, flip_average: bool = False,
                 min_detection_score: float = 0.5):
        import mediapipe as mp  # imported here: ~1 s, and only the MediaPipe backends need it
        import mediapipe.python.solutions.pose  # noqa: F401  (registers the subgraphs' options)
        from mediapipe.python.solution_base import PacketDataType, SolutionBase

        from core.segmenters.person_detection import PoseModels

        if int(detect_every) < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        for key, value in (("main_subject_ratio", main_subject_ratio),
                           ("close_up_torso", close_up_torso), ("crop_margin", crop_margin),
                           ("context_support", context_support)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{key} must lie in [0, 1], got {value}")
        self.detect_every = int(detect_every)
        self.main_subject_ratio = float(main_subject_ratio)
        self.close_up_torso = float(close_up_torso)
        self.crop_margin = float(crop_margin)
        self.context_support = float(context_support)
        self.tiles = bool(tiles)
        self.flip_average = bool(flip_average)
        self._pose = PoseModels(min_detection_score)
        self._follow = SolutionBase(
            graph_config=_FOLLOW_GRAPH, outputs=["landmarks", "next_roi", "segmentation_mask"],
            side_inputs={"model_complexity": 1, "enable_segmentation": True},
            stream_type_hints={"roi": PacketDataType.PROTO})
        self._detection_roi = SolutionBase(graph_config=_DETECTION_ROI_GRAPH, outputs=["roi"],
                                           stream_type_hints={"detection": PacketDataType.PROTO})
        self._selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        # MediaPipe graphs are not re-entrant: one frame at a time through all of them.
        self._lock = threading.Lock()

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import mediapipe  # noqa: F401
        except ImportError as exc:
            return False, f"mediapipe is not installed ({exc})"
        return True, "embedded models from the mediapipe wheel"

    def segment(self, image: np.ndarray, *, max_people: int | None = None,
                state=None) -> np.ndarray:
        """Soft mask of the people of ``image``, following those of the previous frames.

        Args:
            image: ``uint8`` RGB ``H x W x 3``, the video's next frame.
            max_people: keep at most this many people (the biggest); ``None``: everyone.
            state: the video's :class:`~core.temporal.VideoState` (frames in order), or
                ``None`` for a photo (everyone found from scratch).
        Returns:
            ``float32`` ``H x W`` in ``[0, 1]``.
        Raises:
            ParameterError: ``max_people`` is not a positive whole number.
            ValueError: ``image`` is not ``uint8`` ``H x W x 3``.
        """
        if max_people is not None and int(max_people) < 1:
            raise ParameterError(f"max_people must be a positive whole number, got {max_people}")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 H x W x 3, got {image.dtype} {image.shape}")
        image = np.ascontiguousarray(image)
        memory = getattr(state, "tracking", None) if state is not None else None
        if memory is None or memory.owner != id(self) or memory.shape != image.shape:
            memory = Tracks(owner=id(self), shape=image.shape)
            if state is not None:
                state.tracking = memory
        with self._lock:
            people = self._step(image, memory)
        if max_people is not None:
            people = sorted(people, key=lambda t: -t.person.area)[:int(max_people)]
        return self._combine(image, [t.person for t in people])

    # -- one frame ---------------------------------------------------------------------

    def _step(self, image: np.ndarray, memory: Tracks) -> list[Track]:
        index = memory.frame
        memory.frame += 1
        kept, lost = [], 0
        mirrored = np.ascontiguousarray(image[:, ::-1]) if self.flip_average else None
        for track in memory.tracks:
            followed = self._run(image, track.roi, mirrored)
            if followed is None:
                lost += 1
                continue
            track.person, track.roi = followed
            kept.append(track)
        memory.tracks = self._without_duplicates(kept)
        due = (memory.last_discovery < 0 or lost > 0
               or index - memory.last_discovery >= self.detect_every)
        if due:
            memory.last_discovery = index
            for person, roi in self._discover(image, [t.person for t in memory.tracks]):
                memory.tracks.append(Track(memory.next_id, person, roi, index))
                log.debug("frame %d: person %d found", index, memory.next_id)
                memory.next_id += 1
        return memory.tracks

    def _run(self, image: np.ndarray, roi, mirrored: np.ndarray | None = None):
        """The landmark model on ``roi``: ``(Person, next ROI)``, or ``None`` when it sees
        nobody there. With ``mirrored`` (the image flipped left to right), the mask is
        the mean of the model's masks of the image and of its mirror image."""
        from core.segmenters.person_detection import Person

        result = self._follow.process({"image": image, "roi": roi})
        if result.landmarks is None or result.segmentation_mask is None or result.next_roi is None:
            return None
        mask = np.clip(np.asarray(result.segmentation_mask, dtype=np.float32), 0.0, 1.0)
        if mirrored is not None:
            flipped = type(roi)()
            flipped.CopyFrom(roi)
            flipped.x_center, flipped.rotation = 1.0 - roi.x_center, -roi.rotation
            other = self._follow.process({"image": mirrored, "roi": flipped}).segmentation_mask
            if other is not None:
                mask = 0.5 * (mask + np.clip(np.asarray(other, np.float32)[:, ::-1], 0.0, 1.0))
        landmarks = np.array([(p.x, p.y, p.z, p.visibility)
                              for p in result.landmarks.landmark], dtype=np.float32)
        person = Person(mask, landmarks, 1.0)
        if person.area == 0:
            return None
        return person, result.next_roi

    @staticmethod
    def _overlaps(a, b) -> bool:
        """Whether two people's bodies (mask > 0.5) mostly coincide (over half of the
        smaller one)."""
        both = np.count_nonzero((a.mask > 0.5) & (b.mask > 0.5))
        return both > 0.5 * min(a.area, b.area)

    def _without_duplicates(self, tracks: list[Track]) -> list[Track]:
        """Two tracks that slid onto the same person: the older one stays."""
        kept: list[Track] = []
        for track in sorted(tracks, key=lambda t: t.id):
            if not any(self._overlaps(track.person, k.person) for k in kept):
                kept.append(track)
        return kept

    def _discover(self, image: np.ndarray, followed: list) -> list:
        """New people (``(Person, ROI)`` pairs) in ``image``, the ``followed`` ones hidden."""
        height, width = image.shape[:2]
        view = image
        if followed:
            hidden = np.zeros((height, width), np.uint8)
            for person in followed:
                hidden |= (person.mask > 0.25).astype(np.uint8)
            hidden = cv2.dilate(hidden, np.ones((5, 5), np.uint8)) > 0
            view = image.copy()
            view[hidden] = 127
        looks = [(True, d) for d in self._pose.detect(view)]
        if self.tiles:
            looks += [(False, d) for d in self._pose.detect_in_tiles(view)]
        min_area = max(16, int(1e-4 * height * width))
        found: list = []
        for whole_frame, detection in looks:
            roi = self._detection_roi.process({"image": image, "detection": detection}).roi
            if roi is None:
                continue
            run = self._run(image, roi)
            if run is None or run[0].area < min_area:
                continue
            person = run[0]
            if any(self._overlaps(person, other) for other in followed + [p for p, _ in found]):
                continue
            if (followed or not whole_frame) and not (
                    self._main_subject(person, followed + [p for p, _ in found], height, width)
                    and self._selfie_support(image, person) >= self.context_support):
                continue
            found.append(run)
        return found

    def _selfie_support(self, image: np.ndarray, person) -> float:
        """Mean of the general selfie model's mask over ``person``'s body (mask > 0.5),
        the model shown a crop around them: with the people followed greyed out, the
        pose detector can take a bystander, or a shape in the background, for a person of
        main-subject size; the selfie model sees people who stand out."""
        body = person.mask > 0.5
        x0, y0, x1, y1 = _box_around(body, self.crop_margin)
        crop = self._selfie.process(np.ascontiguousarray(image[y0:y1, x0:x1])).segmentation_mask
        if crop is None:
            return 0.0
        return float(np.asarray(crop)[body[y0:y1, x0:x1]].mean())

    def _main_subject(self, person, others: list, height: int, width: int) -> bool:
        """As big as the biggest of ``others`` by ``main_subject_ratio`` (``r``): torso
        length at least ``r`` of the longest one, and mask area at least ``r**2`` of the
        largest one (area goes with the square of size). Both, because each alone is
        fooled: the torso by a seated bystander whose hips the model places too low, the
        area by a person partly hidden."""
        if not others:
            return True  # found only in a tile, nobody else: small people of a wide frame
        biggest = max(p.area for p in others)
        tallest = max(p.torso_fraction(height, width) for p in others)
        ratio = person.area / biggest if biggest else 1.0
        scale = person.torso_fraction(height, width) / tallest if tallest > 0 else 1.0
        r = self.main_subject_ratio
        return scale >= r and ratio >= r * r

    def _combine(self, image: np.ndarray, people: list) -> np.ndarray:
        """Everyone's mask merged with ``max``; close-ups take the larger of their pose
        mask and the selfie model's mask of a crop around them."""
        height, width = image.shape[:2]
        merged = np.zeros((height, width), np.float32)
        for person in people:
            np.maximum(merged, person.mask, out=merged)
            if person.torso_fraction(height, width) < self.close_up_torso:
                continue
            x0, y0, x1, y1 = _box_around(person.mask > 0.5, self.crop_margin)
            with self._lock:
                crop = self._selfie.process(np.ascontiguousarray(image[y0:y1, x0:x1]))
            if crop.segmentation_mask is not None:
                np.maximum(merged[y0:y1, x0:x1], crop.segmentation_mask,
                           out=merged[y0:y1, x0:x1])
        return np.clip(merged, 0.0, 1.0, out=merged)

    def describe(self) -> dict:
        return {"name": self.name, "models": "pose detection + pose landmarks (full), "
                "followed by ROI; selfie (general) on close-ups",
                "detect_every": self.detect_every, "tiles": self.tiles}
