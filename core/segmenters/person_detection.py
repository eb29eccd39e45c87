"""Find every person in a photo and segment each one, with MediaPipe's pose models.

MediaPipe's ``mp.solutions.pose`` follows one person: its graph keeps the best pose
detection and drops the rest. The models themselves (``pose_detection.tflite`` and
``pose_landmark_full.tflite``, both inside the wheel) are not limited to one, so this
module wires MediaPipe's own subgraphs into two small graphs of ours:

- ``PoseDetectionCpu``: all pose detections of an image (one per person it sees);
- ``PoseDetectionToRoi`` + ``PoseLandmarkByRoiCpu``: landmarks and a soft body mask
  (``H x W``, in image coordinates) for one detection.

:meth:`PoseModels.find_people` runs the detector, segments each detection, then hides the
people found so far behind grey and looks again: the detector's non-maximum suppression
merges people who stand close together, and a second look finds the one it dropped.

Only ``model_complexity=1`` ("full") ships in the wheel (lite and heavy are downloads), so
that is the one used. The graphs are not re-entrant: the caller serialises calls.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

log = logging.getLogger(__name__)

_DETECTION_GRAPH = """
input_stream: "image"
output_stream: "detections"
node {
  calculator: "PoseDetectionCpu"
  input_stream: "IMAGE:image"
  output_stream: "DETECTIONS:detections"
}
"""

# A pose detection -> the region of interest (ROI) PoseLandmarkCpu crops for a newly
# detected person (streams "image", "detection" in, "roi" out); the tracker uses it too.
DETECTION_TO_ROI_NODES = """
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

_LANDMARK_GRAPH = """
input_stream: "image"
input_stream: "detection"
input_side_packet: "model_complexity"
input_side_packet: "enable_segmentation"
output_stream: "landmarks"
output_stream: "segmentation_mask"
""" + DETECTION_TO_ROI_NODES + """
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  output_stream: "LANDMARKS:landmarks"
  output_stream: "SEGMENTATION_MASK:segmentation_mask"
}
"""

# Landmark indices (MediaPipe pose topology).
SHOULDERS = (11, 12)
HIPS = (23, 24)
KNEES = (25, 26)
ANKLES = (27, 28)


@dataclass
class Person:
    """One person as the pose model sees them.

    Attributes:
        mask: ``float32`` ``H x W`` in ``[0, 1]``, the pose model's soft body mask in
            image coordinates (zero outside the person's region of interest).
        landmarks: ``float32`` ``33 x 4``: x and y normalised to the image (they may lie
            outside ``[0, 1]`` for parts out of frame), z, visibility.
        score: the detector's confidence.
        look: 1 if the detector found this person on its first look at the image, 2 or
            more if only once the people found before were greyed out.
    """

    mask: np.ndarray
    landmarks: np.ndarray
    score: float
    look: int = 1
    detection: object = field(default=None, repr=False)  # the detector's proto

    @property
    def area(self) -> int:
        """Pixels where the mask is above one half."""
        return int(np.count_nonzero(self.mask > 0.5))

    def legs_seen(self, min_visibility: float = 0.5) -> bool:
        """Whether the legs are seen: the knees' mean visibility is at least
        ``min_visibility`` or an ankle is in frame (:meth:`feet_in_frame`). An upper
        body cut by the bottom edge has neither (knees ~0.4 on the group case); a
        dancer whose feet leave the frame as the camera closes in keeps her knees
        (0.65-1.0 on dance-twirl)."""
        knees = float(self.landmarks[list(KNEES), 3].mean())
        return knees >= min_visibility or self.feet_in_frame(min_visibility)

    def feet_in_frame(self, min_visibility: float = 0.5) -> bool:
        """Whether an ankle is seen inside the image: ``y <= 1`` and visibility at least
        ``min_visibility``. The landmark model extrapolates parts out of frame, below
        the bottom edge or squeezed just inside it with a low visibility (0.3-0.4 on
        an upper-body photo)."""
        ankles = self.landmarks[list(ANKLES)]
        return bool(((ankles[:, 1] <= 1.0) & (ankles[:, 3] >= min_visibility)).any())

    def torso_fraction(self, height: int, width: int) -> float:
        """Shoulder-to-hip length over the image height: ~0.1-0.3 for a whole body in
        frame, 0.5 and more for a close-up (the hips are then extrapolated, off-image)."""
        lm = self.landmarks
        top = lm[list(SHOULDERS), :2].mean(axis=0)
        bottom = lm[list(HIPS), :2].mean(axis=0)
        dx, dy = (bottom - top) * (width, height)
        return float(np.hypot(dx, dy) / height)


def _flip_detection(detection):
    """The same detection for the horizontally mirrored image."""
    flipped = type(detection)()
    flipped.CopyFrom(detection)
    box = flipped.location_data.relative_bounding_box
    box.xmin = 1.0 - box.xmin - box.width
    for keypoint in flipped.location_data.relative_keypoints:
        keypoint.x = 1.0 - keypoint.x
    return flipped


def _move_detection(detection, x0: int, y0: int, side, width: int, height: int):
    """A detection made in the tile at ``(x0, y0)`` (``side`` pixels square, or
    ``(tile width, tile height)``), in the normalised coordinates of the whole
    ``width x height`` image."""
    side_x, side_y = (side, side) if np.isscalar(side) else side
    moved = type(detection)()
    moved.CopyFrom(detection)
    box = moved.location_data.relative_bounding_box
    box.xmin, box.ymin = (x0 + box.xmin * side_x) / width, (y0 + box.ymin * side_y) / height
    box.width, box.height = box.width * side_x / width, box.height * side_y / height
    for keypoint in moved.location_data.relative_keypoints:
        keypoint.x = (x0 + keypoint.x * side_x) / width
        keypoint.y = (y0 + keypoint.y * side_y) / height
    return moved


class PoseModels:
    """MediaPipe pose detection and per-person landmarks + segmentation (CPU).

    Args:
        min_detection_score: detections below this are ignored (the detector's own
            threshold is 0.5).
    """

    def __init__(self, min_detection_score: float = 0.5):
        # Registers the calculators' option types that the subgraphs refer to.
        import mediapipe.python.solutions.pose  # noqa: F401
        from mediapipe.python.solution_base import PacketDataType, SolutionBase

        self.min_detection_score = min_detection_score
        self._detector = SolutionBase(graph_config=_DETECTION_GRAPH, outputs=["detections"])
        self._landmarks = SolutionBase(
            graph_config=_LANDMARK_GRAPH,
            outputs=["landmarks", "segmentation_mask"],
            side_inputs={"model_complexity": 1, "enable_segmentation": True},
            stream_type_hints={"detection": PacketDataType.PROTO})

    def detect(self, image: np.ndarray) -> list:
        """Pose detections (MediaPipe ``Detection`` protos), best first."""
        detections = self._detector.process({"image": image}).detections or []
        detections = [d for d in detections if d.score and d.score[0] >= self.min_detection_score]
        return sorted(detections, key=lambda d: -d.score[0])

    def detect_in_tiles(self, image: np.ndarray) -> list:
        """Pose detections in square tiles along the long side of a wide or tall image,
        in whole-image coordinates (the detector letterboxes its input to a square, so on
        a wide image people are smaller there than they need to be). Empty for images
        closer to square than 4:3."""
        height, width = image.shape[:2]
        side, length = min(height, width), max(height, width)
        if length < 1.34 * side:
            return []
        count = int(np.ceil(2 * length / side)) - 1  # tiles overlapping by half
        found = []
        for start in np.linspace(0, length - side, count).round().astype(int):
            if width >= height:
                x0, y0, tile = start, 0, image[:, start:start + side]
            else:
                x0, y0, tile = 0, start, image[start:start + side]
            for detection in self.detect(np.ascontiguousarray(tile)):
                found.append(_move_detection(detection, x0, y0, side, width, height))
        return sorted(found, key=lambda d: -d.score[0])

    def detect_in_box(self, image: np.ndarray, box: tuple[int, int, int, int]) -> list:
        """Pose detections in the region ``box`` ``(x0, y0, x1, y1)`` of ``image``, the
        detector shown that region alone (so a person small in the image is large to it),
        in whole-image coordinates, best first."""
        height, width = image.shape[:2]
        x0, y0, x1, y1 = box
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        found = self.detect(np.ascontiguousarray(image[y0:y1, x0:x1]))
        return [_move_detection(d, x0, y0, (x1 - x0, y1 - y0), width, height) for d in found]

    def segment(self, image: np.ndarray, detection) -> Person | None:
        """Landmarks and soft mask of the person behind ``detection``; ``None`` when the
        landmark model says nobody is there."""
        result = self._landmarks.process({"image": image, "detection": detection})
        if result.segmentation_mask is None or result.landmarks is None:
            return None
        mask = np.clip(np.asarray(result.segmentation_mask, dtype=np.float32), 0.0, 1.0)
        landmarks = np.array([(p.x, p.y, p.z, p.visibility)
                              for p in result.landmarks.landmark], dtype=np.float32)
        return Person(mask, landmarks, float(detection.score[0]), detection=detection)

    def mirror_average(self, image: np.ndarray, person: Person) -> np.ndarray:
        """``person``'s mask averaged with the pose model's mask of the mirrored image
        (the model is not exactly mirror-symmetric; the average has steadier edges)."""
        mirrored = np.ascontiguousarray(image[:, ::-1])
        other = self._landmarks.process(
            {"image": mirrored, "detection": _flip_detection(person.detection)})
        if other.segmentation_mask is None:
            return person.mask
        flipped = np.asarray(other.segmentation_mask, np.float32)[:, ::-1]
        return np.clip(0.5 * (person.mask + flipped), 0.0, 1.0)

    def find_people(self, image: np.ndarray, max_people: int = 6,
                    max_rounds: int = 3) -> list[Person]:
        """Everyone the detector finds, biggest first.

        The detector looks at the whole image; then again with the people found so far
        greyed out (up to ``max_rounds`` whole-image looks, while they find someone new);
        then once more tile by tile (:meth:`detect_in_tiles`) on wide or tall images. A
        detection whose mask mostly repeats a person already found is dropped.
        """
        height, width = image.shape[:2]
        min_area = max(16, int(1e-4 * height * width))
        people: list[Person] = []
        view = image
        look = 1
        while len(people) < max_people:
            tiles = look > max_rounds
            detections = self.detect_in_tiles(view) if tiles else self.detect(view)
            found = 0
            for detection in detections:
                if len(people) >= max_people:
                    break
                person = self.segment(image, detection)
                if person is None or person.area < min_area:
                    continue
                body = person.mask > 0.5
                if any(np.count_nonzero(body & (p.mask > 0.5)) > 0.5 * min(person.area, p.area)
                       for p in people):
                    continue
                person.look = look
                people.append(person)
                found += 1
            if tiles:
                break
            look = look + 1 if found else max_rounds + 1
            if found:
                hidden = np.zeros((height, width), np.uint8)
                for p in people:
                    hidden |= (p.mask > 0.25).astype(np.uint8)
                hidden = cv2.dilate(hidden, np.ones((5, 5), np.uint8)) > 0
                view = image.copy()
                view[hidden] = 127
        return sorted(people, key=lambda p: -p.area)

    def close(self) -> None:
        self._detector.close()
        self._landmarks.close()
