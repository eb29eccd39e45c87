"""Remove or replace the background behind people in photos.

    python inference.py --image_path photo.jpg --output_path out/
    python inference.py --image_path photo.jpg --output_path result.png --output-type cutout
    python inference.py --image_path photos/ --output_path out/ --background beach.jpg
    python inference.py --image_path photo.jpg --output_path out/ --local   # no services

By default it calls the matting service (``--server``, default http://127.0.0.1:5000),
which asks the segmentation service for the trimap. ``--local`` runs the same pipeline
in this process instead.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.compositing import DEFAULT_BACKGROUND, FIT_MODES
from core.errors import BackendUnavailable, ConfigError, ParameterError, UserError
from core.images import decode_image, encode_image, format_for_path
from core.pipeline import OUTPUT_TYPES

log = logging.getLogger("inference")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
DEFAULT_SERVER = "http://127.0.0.1:5000"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image_path", "--image-path", required=True,
                        help="a photo, or a folder of photos")
    parser.add_argument("--output_path", "--output-path", required=True,
                        help="a file (its extension picks the format) or a folder "
                             "(writes out.jpg, or out.png for transparent outputs; one file "
                             "per photo, named after it, when the input is a folder)")
    parser.add_argument("--background", default=DEFAULT_BACKGROUND,
                        help="an image file, a colour (#RRGGBB or a name), 'blur', 'blur:N' "
                             "or 'transparent' (default: green, as the original)")
    parser.add_argument("--output-type", default="composite",
                        choices=OUTPUT_TYPES)
    parser.add_argument("--fit", default="cover", choices=FIT_MODES,
                        help="how a background image is fitted to the photo")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="matting service URL")
    parser.add_argument("--local", action="store_true",
                        help="run the pipeline in this process instead of calling the services")
    parser.add_argument("--segmenter", default="auto", help="with --local: segmentation backend")
    parser.add_argument("--matter", default="auto", help="with --local: matting backend")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def needs_alpha_channel(args) -> bool:
    return args.output_type == "cutout" or args.background == "transparent"


def output_file(args, image_path: Path, many: bool) -> Path:
    out = Path(args.output_path)
    suffix = ".png" if needs_alpha_channel(args) or args.output_type in ("alpha", "trimap") else ".jpg"
    if many or out.is_dir() or args.output_path.endswith(("/", "\\")):
        out.mkdir(parents=True, exist_ok=True)
        return out / ((image_path.stem if many else "out") + suffix)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def input_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SystemExit(f"error: no images in folder {path}")
        return files
    if not path.exists():
        raise SystemExit(f"error: {path} does not exist")
    return [path]


class RemoteError(RuntimeError):
    """The matting service refused a photo (its JSON error message is kept)."""


class RemoteRunner:
    """Calls the matting service; the response is already the encoded output file."""

    def __init__(self, args):
        import requests

        self.requests, self.args = requests, args
        self.session = requests.Session()
        bg = Path(args.background)
        self.background_file = bg.read_bytes() if bg.is_file() else None

    def __call__(self, image_path: Path, fmt: str) -> bytes:
        args = self.args
        files = {"image": (image_path.name, image_path.read_bytes())}
        data = {"output": args.output_type, "fit": args.fit, "format": fmt}
        if self.background_file is not None:
            files["background"] = ("background", self.background_file)
        else:
            data["background"] = args.background
        try:
            response = self.session.post(args.server.rstrip("/") + "/matte", files=files,
                                         data=data, timeout=600)
        except self.requests.ConnectionError:
            raise SystemExit(f"error: cannot reach the matting service at {args.server}. "
                             "Start the services (see README) or add --local.") from None
        if not response.ok:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError):
                message = response.text[:300]
            raise RemoteError(f"{response.status_code}: {message}")
        if response.headers.get("X-Person-Found") == "false":
            log.warning("%s: no person found; the output is the photo unchanged", image_path.name)
        return response.content


class LocalRunner:
    """Runs the engine's :class:`core.pipeline.Pipeline` in this process (no services)."""

    def __init__(self, args):
        from core.pipeline import Pipeline

        self.args = args
        self.pipeline = Pipeline.in_process(args.segmenter, args.matter)
        bg = Path(args.background)
        self.background = decode_image(bg.read_bytes()) if bg.is_file() else args.background

    def __call__(self, image_path: Path, fmt: str) -> bytes:
        from core.pipeline import render

        data = image_path.read_bytes()
        result = self.pipeline.run(decode_image(data), encoded=data)
        if not result.person_found:
            log.warning("%s: no person found; the output is the photo unchanged", image_path.name)
        return encode_image(render(result, self.args.output_type, self.background, self.args.fit), fmt)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    images = input_files(Path(args.image_path))
    try:
        runner = LocalRunner(args) if args.local else RemoteRunner(args)
    except (ConfigError, BackendUnavailable, UserError) as exc:
        log.error("%s", exc)
        return 2
    failures = 0
    for image_path in images:
        out = output_file(args, image_path, many=len(images) > 1)
        try:
            fmt = format_for_path(out)
            if fmt == "jpeg" and needs_alpha_channel(args):
                raise ParameterError("JPEG cannot store transparency: write a .png or .webp file")
            out.write_bytes(runner(image_path, fmt))
            log.info("wrote %s", out)
        except (RemoteError, UserError) as exc:
            failures += 1
            log.error("%s: %s", image_path, exc)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
