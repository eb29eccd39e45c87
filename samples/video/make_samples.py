"""Rebuild the bundled clips from the CC BY 4.0 originals (see ATTRIBUTION.md).

    python samples/video/make_samples.py [../shared/data/video]
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2

from core.video import EncodedVideoWriter, VideoReader, video_format

HERE = Path(__file__).resolve().parent
SIZE = (240, 360)  # height, width: the original notebook's 360x240


def clip(source: Path, target: Path, first: int, count: int, crf: int = 23) -> None:
    with VideoReader(source, size=SIZE, fit="cover", max_frames=first + count) as reader:
        fmt = video_format("composite", ".mp4", preset="slow", crf=crf)
        # Both sources are constant-rate: write exact 1/fps timestamps (the .mkv's are
        # rounded to milliseconds, which would make the rate read 29.99).
        fps = round(reader.info.fps)
        with EncodedVideoWriter(target, fmt, SIZE, fps) as out:
            for frame in reader:
                if frame.index >= first:
                    out.write(frame.image)
    print(f"{target.name}: {out.frames_written} frames, {target.stat().st_size // 1024} KiB")


def main(data: Path) -> None:
    clip(data / "asl_book.mkv", HERE / "person.mp4", 0, 110)
    # The room is empty for its first ~6 s (10 fps): a real background plate, in motion.
    clip(data / "one-by-one-person-detection.mp4", HERE / "room.mp4", 0, 50)
    with VideoReader(data / "one-by-one-person-detection.mp4", max_frames=1) as reader:
        first = next(iter(reader)).image
    cv2.imwrite(str(HERE / "room.jpg"), cv2.cvtColor(first, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"room.jpg: {first.shape[1]}x{first.shape[0]}")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "video"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
