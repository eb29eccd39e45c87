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
from dataclasses import dataclass

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

_LANDMARK_GRAPH = """
input_stream: "image"
input_stream: "detection"
input_side_packet: "model_complexity"
input_side_packet: "enable_segmentation"
output_stream: "landmarks"
output_stream: "segmentation_mask"
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

    @property
    def area(self) -> int:
        """Pixels where the mask is above one half."""
        return int(np.count_nonzero(self.mask > 0.5))

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


class PoseModels:
    """MediaPipe pose detection and per-person landmarks + segmentation (CPU).

    Args:
        min_detection_score: detections below this are ignored (the detector's own
            threshold is 0.5).
    """

    def __init__(self, min_detection_score: float = 0.5):
        from mediapipe.python.solution_base import PacketDataType, SolutionBase
        # Registers the calculators' option types that the subgraphs refer to.
        import mediapipe.python.solutions.pose  # noqa: F401

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

    def segment(self, image: np.ndarray, detection, flip_average: bool = False) -> Person | None:
        """Landmarks and soft mask of the person behind ``detection``; ``None`` when the
        landmark model says nobody is there. ``flip_average`` also runs the mirrored image
        and averages the two masks (steadier edges, twice the time)."""
        result = self._landmarks.process({"image": image, "detection": detection})
        if result.segmentation_mask is None or result.landmarks is None:
            return None
        mask = np.asarray(result.segmentation_mask, dtype=np.float32)
        if flip_average:
            mirrored = np.ascontiguousarray(image[:, ::-1])
            other = self._landmarks.process(
                {"image": mirrored, "detection": _flip_detection(detection)})
            if other.segmentation_mask is not None:
                mask = 0.5 * (mask + np.asarray(other.segmentation_mask, np.float32)[:, ::-1])
        landmarks = np.array([(p.x, p.y, p.z, p.visibility)
                              for p in result.landmarks.landmark], dtype=np.float32)
        return Person(np.clip(mask, 0.0, 1.0), landmarks, float(detection.score[0]))

    def find_people(self, image: np.ndarray, max_people: int = 6, max_rounds: int = 3,
                    flip_average: bool = False) -> list[Person]:
        """Everyone the detector finds, looking again with the people found so far greyed
        out (up to ``max_rounds`` looks), biggest first.

        A detection whose mask mostly repeats a person already found is dropped.
        """
        height, width = image.shape[:2]
        min_area = max(16, int(1e-4 * height * width))
        people: list[Person] = []
        view = image
        for look in range(1, max_rounds + 1):
            found = 0
            for detection in self.detect(view):
                if len(people) >= max_people:
                    break
                person = self.segment(image, detection, flip_average)
                if person is None or person.area < min_area:
                    continue
                body = person.mask > 0.5
                if any(np.count_nonzero(body & (p.mask > 0.5)) > 0.5 * min(person.area, p.area)
                       for p in people):
                    continue
                person.look = look
                people.append(person)
                found += 1
            if not found or len(people) >= max_people:
                break
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
