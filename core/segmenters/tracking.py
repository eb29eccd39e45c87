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
   out (and, while nobody is followed, on images wider or taller than 4:3, in square
   tiles along the long side too, as
   :meth:`~core.segmenters.person_detection.PoseModels.find_people` does). A detection
   whose body mostly repeats someone followed is dropped. With nobody followed yet,
   everyone the whole-frame look finds is kept (the accurate photo mode's first look);
   otherwise a newcomer must be a main subject: at least ``main_subject_ratio`` of the
   biggest person followed by torso length (and its square by mask area), and seen by
   the selfie model (mean ``context_support`` over their body, shown a crop around
   them), as in the accurate photo mode. So the seated audience behind a dancer stays
   background, and a person walking into a room with others in it is kept once their
   torso is in. Detections whose whole-body square is far smaller than the biggest
   person's, or centred on someone followed, are skipped before the landmark model runs.
   **Faces.** On the first discovery, every ``face_every``-th one, and whenever a
   landmark track has spread over two faces, the full-range face detector looks too (on
   the whole frame and on tiles): people too small or too hidden for the pose detector
   (seated behind desks at the back of a classroom) are found by their face, given a
   body by the general selfie model shown a square around it, and followed by that
   mask (:class:`Body`: each frame the selfie model on their last box, the region within
   a few pixels of their last outline). See :meth:`TrackingSegmenter._discover_faces`.
3. **Combine.** A close-up (torso at least ``close_up_torso`` of the frame's height: the
   pose mask is coarse there) also gets the general selfie model on a crop around them,
   and takes the larger of the two masks, as the accurate photo mode does. People are
   merged with ``max``.

There is no limit on the number of people (``max_people`` keeps the most prominent when
given). Cost per frame: one landmark run per person (about 14 ms on the project's idle
2-core machine), plus a selfie run per close-up, plus a detector run every
``detect_every`` frames; the accurate photo mode spends 3-6 model runs per person and
frame.

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
from core.people import People
from core.segmenters import Segmenter
from core.segmenters.mediapipe import mediapipe_available
from core.segmenters.person_detection import DETECTION_TO_ROI_NODES

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
""" + DETECTION_TO_ROI_NODES


def _box_around(body: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the true pixels of ``body`` (not empty), grown by ``margin``
    times the longer side and clipped to the image."""
    rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    grow = margin * max(x1 - x0, y1 - y0)
    height, width = body.shape
    return (int(max(0, x0 - grow)), int(max(0, y0 - grow)),
            int(min(width, x1 + grow)), int(min(height, y1 + grow)))


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


# Frames a person found by their face may go unseen by the selfie model (their last mask
# standing in) before they count as gone.
BODY_MISSES = 5


def _box_overlap(a: tuple, b: tuple) -> float:
    """Intersection of two ``(x0, y0, x1, y1)`` boxes over the smaller one."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / smaller) if w > 0 and h > 0 and smaller > 0 else 0.0


def _covers_two_faces(person, faces: list, height: int) -> bool:
    """Whether ``person`` 's mask (> 0.5) covers two faces ``(x, y, width)`` at the height
    of their own head (within two face widths of their nose landmark) and of about one
    size (the smaller at least half the larger): a band the landmark model draws across
    people seated side by side. A standing person's mask also covers the faces of a
    crowd behind their body, lower down: those do not count."""
    nose_y = float(person.landmarks[0, 1]) * height
    covered = sorted((w for x, y, w in faces
                      if person.mask[y, x] > 0.5 and abs(y - nose_y) <= 2 * w), reverse=True)
    return len(covered) >= 2 and covered[1] >= 0.5 * covered[0]


def _roi_side(roi, height: int, width: int) -> float:
    """The longer side of a ROI (``NormalizedRect``) in pixels."""
    return max(roi.width * width, roi.height * height)


@dataclass
class Body:
    """A person found by their face and followed by their mask (no landmarks).

    Attributes:
        mask: ``float32`` ``H x W`` in ``[0, 1]``, the selfie model's soft mask.
    """

    mask: np.ndarray

    @property
    def area(self) -> int:
        """Pixels where the mask is above one half."""
        return int(np.count_nonzero(self.mask > 0.5))


@dataclass
class Track:
    """One person followed from frame to frame.

    Attributes:
        id: unique within the video, in order of discovery.
        person: the last frame's :class:`~core.segmenters.person_detection.Person`
            (soft body mask ``float32`` ``H x W`` in ``[0, 1]``, landmarks), or a
            :class:`Body` for a person found by their face.
        roi: the ROI for the next frame (MediaPipe ``NormalizedRect``); ``None`` for a
            :class:`Body`, followed from its last mask instead.
        since: the frame index where the person was first found.
        misses: frames in a row a :class:`Body` was not seen (its last mask stood in).
    """

    id: int
    person: object
    roi: object
    since: int
    misses: int = 0


@dataclass
class Tracks:
    """What :class:`TrackingSegmenter` carries from frame to frame of one video (kept in
    ``VideoState.tracking``)."""

    owner: int                     # id() of the segmenter that made it
    tracks: list = field(default_factory=list)
    frame: int = 0                 # frames seen
    next_id: int = 0
    last_discovery: int = -1       # frame index of the last discovery
    discoveries: int = 0           # how many there were
    faces: list = field(default_factory=list)  # (x, y, width) of the last face look's faces
    face_due: bool = False         # look for faces at the next discovery
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
        face_every: look for people by their face on every this many discoveries (the
            first one included; ``0``: never); see :meth:`_discover_faces`.
        face_to_subject: a face found must be at least this share of the tallest
            person's height wide.
    Raises:
        ValueError: an option out of range.
    """

    name = "mediapipe-tracking"
    follows_people = True  # LocalPersonSource hands it the video's state

    def __init__(self, detect_every: int = 8, main_subject_ratio: float = 0.65,
                 close_up_torso: float = 0.4, crop_margin: float = 0.3,
                 context_support: float = 0.5, tiles: bool = True, flip_average: bool = False,
                 face_every: int = 4, face_to_subject: float = 0.1,
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
        if int(face_every) < 0 or not 0.0 <= float(face_to_subject) <= 1.0:
            raise ValueError(f"face_every must be >= 0 and face_to_subject in [0, 1], got "
                             f"{face_every} and {face_to_subject}")
        self.face_every = int(face_every)
        self.face_to_subject = float(face_to_subject)
        self._pose = PoseModels(min_detection_score)
        self._follow = SolutionBase(
            graph_config=_FOLLOW_GRAPH, outputs=["landmarks", "next_roi", "segmentation_mask"],
            side_inputs={"model_complexity": 1, "enable_segmentation": True},
            stream_type_hints={"roi": PacketDataType.PROTO})
        self._detection_roi = SolutionBase(graph_config=_DETECTION_ROI_GRAPH, outputs=["roi"],
                                           stream_type_hints={"detection": PacketDataType.PROTO})
        self._selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        self._face = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                               min_detection_confidence=0.6)
        # MediaPipe graphs are not re-entrant: one frame at a time through all of them.
        self._lock = threading.Lock()

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return mediapipe_available()

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
        masks = self._people_masks(image, max_people, state)
        merged = np.zeros(image.shape[:2], np.float32)
        for mask in masks:
            np.maximum(merged, mask, out=merged)
        return merged

    def find_people(self, image: np.ndarray, *, max_people: int | None = None,
                    state=None) -> People:
        """Everyone as instances (:class:`core.people.People`), each person followed being
        one: their own mask (as :meth:`segment` combines it), score 1. Arguments and errors
        as :meth:`segment`; everyone's mask is the same ``max`` of theirs."""
        masks = self._people_masks(image, max_people, state)
        if not masks:
            return People(np.zeros(image.shape[:2], np.float32))
        found = People.from_instances(np.stack(masks), [1.0] * len(masks))
        found.mask = np.max(np.stack(masks), axis=0)
        return found

    def _people_masks(self, image: np.ndarray, max_people: int | None, state) -> list:
        """One frame: the people followed and found (see the module docstring), each one's
        ``float32`` ``H x W`` mask, biggest first when ``max_people`` cuts the list."""
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
        return [self._own_mask(image, t.person) for t in people]

    # -- one frame ---------------------------------------------------------------------

    def _step(self, image: np.ndarray, memory: Tracks) -> list[Track]:
        index = memory.frame
        memory.frame += 1
        kept, lost = [], 0
        mirrored = np.ascontiguousarray(image[:, ::-1]) if self.flip_average else None
        for track in memory.tracks:
            if track.roi is None:
                body = self._follow_body(image, track.person)
                if body is None:
                    # The selfie model misses a small or blurred person now and then:
                    # their last mask stands in for a few frames before they count as gone.
                    track.misses += 1
                    if track.misses > BODY_MISSES:
                        lost += 1
                        continue
                else:
                    track.person, track.misses = body, 0
            else:
                followed = self._run(image, track.roi, mirrored)
                if followed is None:
                    lost += 1
                    continue
                track.person, track.roi = followed
            kept.append(track)
        memory.tracks = self._without_duplicates(kept)
        # A landmark track spread over two faces seen at the last face look has slid into
        # a band across people seated side by side: dropped, and the faces looked at again.
        height = image.shape[0]
        spread = [t for t in memory.tracks
                  if t.roi is not None and _covers_two_faces(t.person, memory.faces, height)]
        if spread:
            memory.tracks = [t for t in memory.tracks if not any(t is b for b in spread)]
            lost += len(spread)
            memory.face_due = True
        due = (memory.last_discovery < 0 or lost > 0
               or index - memory.last_discovery >= self.detect_every)
        if due:
            found = self._discover(image, memory.tracks)
            if self.face_every and (memory.face_due or memory.discoveries % self.face_every == 0):
                memory.face_due = False
                memory.tracks, bodies, memory.faces = self._discover_faces(
                    image, memory.tracks + [Track(-1, person, roi, index) for person, roi in found])
                found = [(t.person, t.roi) for t in memory.tracks if t.id < 0] + bodies
                memory.tracks = [t for t in memory.tracks if t.id >= 0]
            for person, roi in found:
                memory.tracks.append(Track(memory.next_id, person, roi, index))
                log.debug("frame %d: person %d found", index, memory.next_id)
                memory.next_id += 1
            memory.last_discovery = index
            memory.discoveries += 1
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
        """Two tracks of one kind (landmarks, or a face's body) that slid onto the same
        person: the older one stays. A body and a landmark track may overlap: the
        landmark model, following someone seated beside another, can spread over both,
        and the body is then all that keeps the other one's outline."""
        kept: list[Track] = []
        for track in sorted(tracks, key=lambda t: t.id):
            if not any((k.roi is None) == (track.roi is None)
                       and self._overlaps(track.person, k.person) for k in kept):
                kept.append(track)
        return kept

    def _discover(self, image: np.ndarray, tracks: list[Track]) -> list:
        """New people (``(Person, ROI)`` pairs) in ``image``, those of ``tracks`` hidden."""
        height, width = image.shape[:2]
        followed = [t.person for t in tracks]
        view = image
        hidden = np.zeros((height, width), bool)
        if followed:
            grey = np.zeros((height, width), np.uint8)
            for person in followed:
                grey |= (person.mask > 0.25).astype(np.uint8)
            hidden = cv2.dilate(grey, np.ones((5, 5), np.uint8)) > 0
            view = image.copy()
            view[hidden] = 127
        looks = [(True, d) for d in self._pose.detect(view)]
        if self.tiles and not tracks:
            # Tiles find people too small for the whole-frame look; with someone followed,
            # a newcomer must be nearly their size, which the whole-frame look sees.
            looks += [(False, d) for d in self._pose.detect_in_tiles(view)]
        # A detection's ROI is its whole body's square; one far smaller than the biggest
        # person's cannot be a main subject, and one centred on someone followed is their
        # greyed silhouette: both are skipped before the landmark model runs (~14 ms each).
        biggest = max((_roi_side(t.roi, height, width) for t in tracks if t.roi is not None),
                      default=0.0)
        min_side = 0.75 * self.main_subject_ratio * biggest
        min_area = max(16, int(1e-4 * height * width))
        found: list = []
        for whole_frame, detection in looks:
            roi = self._detection_roi.process({"image": image, "detection": detection}).roi
            if roi is None or _roi_side(roi, height, width) < min_side:
                continue
            cx, cy = int(roi.x_center * width), int(roi.y_center * height)
            if 0 <= cx < width and 0 <= cy < height and hidden[cy, cx]:
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

    # -- people found by their face ----------------------------------------------------

    def _faces(self, image: np.ndarray) -> list[tuple]:
        """Face boxes ``(x0, y0, x1, y1)`` in pixels, best first, each face once: the
        full-range face detector on the whole image and on square tiles half as tall as
        its short side, overlapping by half (a 20-pixel face in a 480x270 frame is too
        small for it on the whole image). Issue 11's photo segmenter looks for faces the
        same way (its ``core/segmenters/faces.py``)."""
        height, width = image.shape[:2]
        boxes = []

        def look(part: np.ndarray, x0: int, y0: int) -> None:
            h, w = part.shape[:2]
            for detection in self._face.process(np.ascontiguousarray(part)).detections or []:
                box = detection.location_data.relative_bounding_box
                fx0, fy0 = x0 + box.xmin * w, y0 + box.ymin * h
                boxes.append((float(detection.score[0]),
                              (fx0, fy0, fx0 + box.width * w, fy0 + box.height * h)))

        look(image, 0, 0)
        side = max(16, round(0.5 * min(height, width)))
        xs = np.linspace(0, width - side, max(1, int(np.ceil(2 * width / side)) - 1))
        ys = np.linspace(0, height - side, max(1, int(np.ceil(2 * height / side)) - 1))
        for y0 in ys.round().astype(int):
            for x0 in xs.round().astype(int):
                look(image[y0:y0 + side, x0:x0 + side], x0, y0)
        kept: list[tuple] = []
        for _, box in sorted(boxes, key=lambda b: -b[0]):
            if all(_box_overlap(box, k) < 0.5 for k in kept):
                kept.append(box)
        return kept

    def _discover_faces(self, image: np.ndarray, tracks: list[Track]
                        ) -> tuple[list[Track], list, list]:
        """People the pose detector misses (small, seated, behind desks), by their face.

        A face counts when nobody's mask is sure over it (mean under 0.8 over its box)
        and it is at least ``face_to_subject`` times as wide as the tallest person with
        landmarks is tall (a seated classmate's face is 0.15-0.25 of the front-row
        person's visible height; an audience face behind a standing dancer under 0.07).
        Its body: the general selfie model shown a square around the face, the region
        connected to the face. A person with landmarks whose body covers two or more
        faces of about one size is dropped first (:func:`_covers_two_faces`): given people
        seated side by side, the landmark model returns one band across their heads and
        shoulders.

        Returns:
            ``(tracks kept, [(Body, None), ...], faces [(centre x, centre y, width), ...])``.
        """
        height, width = image.shape[:2]
        faces = self._faces(image)
        centres = [(min(width - 1, int((b[0] + b[2]) / 2)), min(height - 1, int((b[1] + b[3]) / 2)))
                   for b in faces]
        spots = [(x, y, b[2] - b[0]) for (x, y), b in zip(centres, faces)]
        tracks = [t for t in tracks
                  if t.roi is None or not _covers_two_faces(t.person, spots, height)]
        tallest = 0
        for track in tracks:
            if track.roi is not None:
                rows = np.flatnonzero((track.person.mask > 0.5).any(axis=1))
                tallest = max(tallest, int(rows[-1] - rows[0] + 1)) if rows.size else tallest
        reference = tallest or 0.5 * height
        sure = np.zeros((height, width), np.float32)
        for track in tracks:
            np.maximum(sure, track.person.mask, out=sure)
        bodies = []
        for x0, y0, x1, y1 in faces:
            fx0, fy0, fx1, fy1 = (int(round(v)) for v in (x0, y0, x1, y1))
            over = sure[max(0, fy0):max(fy0 + 1, fy1), max(0, fx0):max(fx0 + 1, fx1)]
            if over.size and float(over.mean()) >= 0.8:
                continue
            if x1 - x0 < self.face_to_subject * reference:
                continue
            body = self._body_at_face(image, (x0, y0, x1, y1))
            if body is None or any(self._overlaps(body, t.person) for t in tracks):
                continue
            bodies.append((body, None))
            np.maximum(sure, body.mask, out=sure)
        return tracks, bodies, spots

    def _body_at_face(self, image: np.ndarray, face: tuple) -> Body | None:
        """The selfie model's mask of the person whose face is ``face``, shown a square
        from one face width above it to six below, three wide at least; the region
        connected to the face."""
        height, width = image.shape[:2]
        fx0, fy0, fx1, fy1 = face
        w = fx1 - fx0
        top, bottom = fy0 - w, fy1 + 6 * w
        side = max(bottom - top, 3 * w)
        cx = 0.5 * (fx0 + fx1)
        x0, y0 = max(0, int(round(cx - side / 2))), max(0, int(round(top)))
        x1, y1 = min(width, int(round(cx + side / 2))), min(height, int(round(top + side)))
        return self._selfie_region(image, (x0, y0, x1, y1),
                                   (int(cx), int(0.5 * (fy0 + fy1))))

    def _selfie_region(self, image: np.ndarray, box: tuple, seed=None,
                       previous: np.ndarray | None = None) -> Body | None:
        """The general selfie model on ``image[box]``: the region of its mask (> 0.5) at
        the point ``seed`` (``(x, y)``), or the one overlapping ``previous`` (a mask) the
        most, kept within reach of ``previous``; ``None`` when there is none. The region is
        grown by 2 pixels and keeps the model's soft values."""
        height, width = image.shape[:2]
        x0, y0, x1, y1 = box
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        crop = self._selfie.process(np.ascontiguousarray(image[y0:y1, x0:x1])).segmentation_mask
        if crop is None:
            return None
        crop = np.asarray(crop, np.float32)
        count, labels = cv2.connectedComponents((crop > 0.5).astype(np.uint8), connectivity=8)
        if count <= 1:
            return None
        if seed is not None:
            sx, sy = min(x1 - x0 - 1, max(0, seed[0] - x0)), min(y1 - y0 - 1, max(0, seed[1] - y0))
            label = labels[sy, sx]
        else:
            inside = labels[previous[y0:y1, x0:x1] > 0.5]
            votes = np.bincount(inside, minlength=count)
            votes[0] = 0
            label = int(votes.argmax())
            if votes[label] == 0:
                return None
        if label == 0:
            return None
        region = labels == label
        if previous is not None:
            # Only as far from the last outline as a person moves in a frame: the region
            # must not grow, frame after frame, into a neighbour it touches.
            last = previous[y0:y1, x0:x1] > 0.5
            reach = max(2, int(0.03 * max(x1 - x0, y1 - y0)))
            region &= cv2.dilate(last.astype(np.uint8), _disk(reach)) > 0
        region = cv2.dilate(region.astype(np.uint8), _disk(2)) > 0
        mask = np.zeros((height, width), np.float32)
        mask[y0:y1, x0:x1] = np.where(region, crop, 0.0)
        return Body(mask)

    def _follow_body(self, image: np.ndarray, body: Body) -> Body | None:
        """The person of ``body`` in the next frame: the selfie model on their last box
        grown by a quarter of its longer side, the region overlapping their last mask."""
        if body.area == 0:
            return None
        return self._selfie_region(image, _box_around(body.mask > 0.5, 0.25),
                                   previous=body.mask)

    def _main_subject(self, person, others: list, height: int, width: int) -> bool:
        """As big as the biggest of ``others`` by ``main_subject_ratio`` (``r``): torso
        length at least ``r`` of the longest one, and mask area at least ``r**2`` of the
        largest one (area goes with the square of size). Both, because each alone is
        fooled: the torso by a seated bystander whose hips the model places too low, the
        area by a person partly hidden."""
        if not others:
            return True  # found only in a tile, nobody else: small people of a wide frame
        r = self.main_subject_ratio
        biggest = max(p.area for p in others)
        if biggest and person.area < r * r * biggest:
            return False
        # Torso lengths need landmarks: people found by their face (Body) have none.
        torsos = [p.torso_fraction(height, width) for p in others if not isinstance(p, Body)]
        tallest = max(torsos, default=0.0)
        return tallest <= 0 or person.torso_fraction(height, width) >= r * tallest

    def _own_mask(self, image: np.ndarray, person) -> np.ndarray:
        """A person's mask; a close-up's is the larger of their pose mask and the selfie
        model's mask of a crop around them (the pose mask is coarse there)."""
        height, width = image.shape[:2]
        if isinstance(person, Body) or person.torso_fraction(height, width) < self.close_up_torso:
            return person.mask
        mask = person.mask.copy()
        x0, y0, x1, y1 = _box_around(person.mask > 0.5, self.crop_margin)
        with self._lock:
            crop = self._selfie.process(np.ascontiguousarray(image[y0:y1, x0:x1]))
        if crop.segmentation_mask is not None:
            np.maximum(mask[y0:y1, x0:x1], np.clip(crop.segmentation_mask, 0.0, 1.0),
                       out=mask[y0:y1, x0:x1])
        return mask

    def describe(self) -> dict:
        return {"name": self.name, "models": "pose detection + pose landmarks (full), "
                "followed by ROI; full-range face detection; selfie (general) on close-ups "
                "and on people found by their face",
                "detect_every": self.detect_every, "face_every": self.face_every,
                "tiles": self.tiles, "flip_average": self.flip_average}
