"""Find faces too small for the pose detector: MediaPipe's full-range face detector
(``face_detection_full_range_sparse.tflite``, inside the mediapipe wheel) on tiles.

The pose detector sees a letterboxed 224x224 copy of the image, so a seated person
whose head is 20 pixels tall in a 480x270 classroom frame is 9 pixels tall to it, and
it misses them. The full-range face detector (a 192x192 model made for faces up to
~5 m away) finds such faces once the image is cut into square tiles and each tile is
shown at the detector's size (tiles overlap by a quarter; the same face found twice is
kept once). Each face then says where to look for a body: :func:`body_box`.

The MediaPipe graph is not re-entrant: the caller serialises calls (the segmenter's lock).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The detector's input side: a tile is scaled to this.
DETECTOR_SIDE = 192


@dataclass
class Face:
    """A face in image pixels: ``box`` ``(x0, y0, x1, y1)`` (floats) and the detector's score."""

    box: tuple
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def centre(self) -> tuple[float, float]:
        return (0.5 * (self.box[0] + self.box[2]), 0.5 * (self.box[1] + self.box[3]))


def _overlap(a: tuple, b: tuple) -> float:
    """Intersection over the smaller box."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(w * h / smaller) if smaller > 0 else 0.0


class FaceFinder:
    """All faces of an image, small ones included.

    Args:
        min_score: detections below this are ignored.
        tile_side: the tile side in image pixels, as a fraction of the image's short
            side (0.5: tiles half as tall as a landscape image, so a face is shown to
            the detector twice as large as on the whole image).
    """

    def __init__(self, min_score: float = 0.6, tile_fraction: float = 0.5):
        import mediapipe as mp

        self.min_score = float(min_score)
        self.tile_fraction = float(tile_fraction)
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=self.min_score)

    def _detect(self, image: np.ndarray, x0: int, y0: int) -> list[Face]:
        height, width = image.shape[:2]
        found = []
        for detection in self._detector.process(np.ascontiguousarray(image)).detections or []:
            box = detection.location_data.relative_bounding_box
            fx0, fy0 = x0 + box.xmin * width, y0 + box.ymin * height
            found.append(Face((fx0, fy0, fx0 + box.width * width, fy0 + box.height * height),
                              float(detection.score[0])))
        return found

    def find(self, image: np.ndarray) -> list[Face]:
        """Faces on the whole image and on overlapping square tiles, best first, each
        face once (a detection mostly inside a better one is dropped)."""
        height, width = image.shape[:2]
        faces = self._detect(image, 0, 0)
        side = max(16, int(round(self.tile_fraction * min(height, width))))
        # Tiles overlap by a quarter: a face small enough to need a tile (the whole-image
        # look finds the larger ones) lies wholly inside one of them.
        stride = 0.75 * side
        xs = np.linspace(0, width - side, max(1, int(np.ceil((width - side) / stride)) + 1))
        ys = np.linspace(0, height - side, max(1, int(np.ceil((height - side) / stride)) + 1))
        for y0 in ys.round().astype(int):
            for x0 in xs.round().astype(int):
                faces += self._detect(image[y0:y0 + side, x0:x0 + side], x0, y0)
        kept: list[Face] = []
        for face in sorted(faces, key=lambda f: -f.score):
            if all(_overlap(face.box, k.box) < 0.5 for k in kept):
                kept.append(face)
        return kept

    def close(self) -> None:
        self._detector.close()


def body_box(face: Face, width: int, height: int, across: float = 3.0,
             below: float = 6.0) -> tuple[int, int, int, int]:
    """A square region where the body of ``face`` lies (a seated or standing person's head,
    shoulders and trunk): ``across`` face widths wide, from one face width above the face
    to ``below`` face widths under it; grown to a square, clipped to the image."""
    cx, _ = face.centre
    w = face.width
    top = face.box[1] - w
    bottom = face.box[3] + below * w
    side = max(bottom - top, across * w)
    x0 = int(round(cx - side / 2))
    y0 = int(round(top))
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, int(round(x0 + side))), min(height, int(round(y0 + side)))
    return x0, y0, x1, y1
