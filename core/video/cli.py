"""The command line: ``python -m core.video FOREGROUND [-b BACKGROUND] [-o OUTPUT] ...``
(``-h`` lists the options); :func:`main` calls :func:`core.video.convert.convert_video`."""
from __future__ import annotations

import argparse
import logging

from core.compositing import FIT_MODES
from core.errors import BackendUnavailable, ConfigError, UserError
from core.video.convert import (
    DEFAULT_MATTER,
    DEFAULT_SEGMENTER,
    DEFAULT_SEGMENTER_MODE,
    OUTPUT_TYPES,
    SEGMENTER_MODES,
    TRANSPARENT_FORMATS,
    convert_video,
)

# One logger for the whole package, named as before the split (``core.video``).
log = logging.getLogger("core.video")


def build_parser() -> argparse.ArgumentParser:
    from core.matters import MATTERS
    from core.segmenters import SEGMENTERS

    p = argparse.ArgumentParser(
        prog="python -m core.video",
        description="Composite the people of one video over another video, an image, a colour "
                    "or a blur; or write them with transparency, as an alpha matte or as PNGs.")
    p.add_argument("foreground", help="video with people in it")
    p.add_argument("-b", "--background", default="#00ff00",
                   help="video (looped/trimmed), image, colour (#00ff00, green) or blur[:STRENGTH] "
                        "(default: %(default)s)")
    p.add_argument("-o", "--output", help="output file, or folder for --output-type png "
                                          "(default: next to the foreground)")
    p.add_argument("-t", "--output-type", choices=OUTPUT_TYPES, default="composite")
    p.add_argument("--format", choices=TRANSPARENT_FORMATS,
                   help="container for --output-type transparent (default: from -o, else webm)")
    p.add_argument("--no-smoothing", dest="smoothing", action="store_false",
                   help="no temporal smoothing of masks and alpha")
    p.add_argument("--fit", choices=FIT_MODES, default="cover",
                   help="how the background is fitted to the frame (default: %(default)s)")
    p.add_argument("--segmenter", choices=["auto", *SEGMENTERS], default=DEFAULT_SEGMENTER)
    p.add_argument("--segmenter-mode", choices=SEGMENTER_MODES, default=DEFAULT_SEGMENTER_MODE,
                   help="mediapipe: 'tracking' (the default: every person followed from frame "
                        "to frame with the pose models, whole bodies and groups), 'fast' (the "
                        "selfie model on every frame: people close to the camera) or 'accurate' "
                        "(the photo segmenter on every frame, several times slower)")
    p.add_argument("--matter", choices=["auto", *MATTERS], default=DEFAULT_MATTER,
                   help="matting backend (default: %(default)s, the fast one; closed-form is "
                        "~0.4 s per 360x240 frame)")
    p.add_argument("--people", default="all",
                   help="which people to keep in every frame: all (default), largest, N (the N "
                        "largest), index:I,J (0 = the largest) or at:X,Y (the person there)")
    p.add_argument("--size", help="output WIDTHxHEIGHT, e.g. 360x240 (default: the foreground's)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--no-audio", dest="audio", action="store_false", help="drop the audio")
    p.add_argument("--crf", type=int, default=20, help="H.264 quality, lower is better (default 20)")
    p.add_argument("--preset", default="veryfast", help="libx264 preset (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings only")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        result = convert_video(
            args.foreground, background=args.background, output=args.output,
            output_type=args.output_type, format=args.format, segmenter=args.segmenter,
            matter=args.matter, smoothing=args.smoothing, fit=args.fit, size=args.size,
            max_frames=args.max_frames, audio=args.audio, progress=not args.quiet,
            preset=args.preset, crf=args.crf, segmenter_mode=args.segmenter_mode,
            people=args.people)
    except KeyboardInterrupt:
        return 130
    except (UserError, ConfigError, BackendUnavailable) as exc:
        log.error("%s", exc)
        return 2
    print(f"{result.output}: {result.frames} frames, {result.size[1]}x{result.size[0]}, "
          f"{float(result.fps):g} fps, audio: {result.audio or 'none'}; "
          f"{result.frames_per_second:.1f} frames/s")
    return 0
