"""Remove or replace the background behind people in photos.

    python inference.py --image_path photo.jpg --output_path out/
    python inference.py --image_path photo.jpg --output_path result.png --output-type cutout
    python inference.py --image_path photos/ --output_path out/ --background beach.jpg
    python inference.py --image_path photo.jpg --output_path out/ --local   # no services

By default it calls the matting service (``--server``, default http://127.0.0.1:5000),
which asks the segmentation service for the trimap. ``--local`` runs the same pipeline
in this process instead.

A folder gets one output per photo (names: ``--help``, under ``--output_path``), a
progress bar, and photos sent to the service several at a time (``--jobs``); a photo that
fails is reported and the others go on, and the exit code is 1 if any failed.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from core.compositing import DEFAULT_BACKGROUND, FIT_MODES
from core.errors import BackendUnavailable, ConfigError, NoPersonError, ParameterError, UserError
from core.images import decode_image, encode_image, format_for_path
from core.people import parse_selection
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
                             "(writes out.jpg, or out.png for transparent outputs). For a "
                             "folder of photos, one file per photo named after it "
                             "(photo.jpg -> photo.jpg or photo.png, by output type); photos "
                             "that share a name apart from the extension keep their whole "
                             "name ('photo one.jpg' -> 'photo one.jpg.png', 'photo one.png' -> "
                             "'photo one.png.png'), as does one whose output would replace an "
                             "input photo, so no output overwrites another or a photo")
    parser.add_argument("--background", default=DEFAULT_BACKGROUND,
                        help="an image file, a colour (#RRGGBB or a name), 'blur', 'blur:N' "
                             "or 'transparent' (default: green, as the original)")
    parser.add_argument("--output-type", default="composite",
                        choices=OUTPUT_TYPES)
    parser.add_argument("--fit", default="cover", choices=FIT_MODES,
                        help="how a background image is fitted to the photo")
    parser.add_argument("--people", default="all",
                        help="which people to keep: all (default), largest, N (the N largest), "
                             "index:I,J (0 = the largest; the log lists them) or at:X,Y "
                             "(the person under that pixel)")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="matting service URL")
    parser.add_argument("--local", action="store_true",
                        help="run the pipeline in this process instead of calling the services")
    parser.add_argument("--segmenter", default="auto", help="with --local: segmentation backend")
    parser.add_argument("--matter", default="auto", help="with --local: matting backend")
    parser.add_argument("--jobs", type=int, default=None,
                        help="photos sent to the service at once (default: the worker count "
                             "its /health reports, else 2; --local runs one at a time)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar for folders")
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


def plan_outputs(args, images: list[Path]) -> list[tuple[Path, Path]]:
    """``(photo, output file)`` for every photo, each output distinct and none an input.

    Photos of a folder are named after their stem (:func:`output_file`); photos sharing a
    stem (case-insensitively, as on macOS and Windows disks) or whose output would replace
    one of the photos keep their whole name instead (``a.jpg`` -> ``a.jpg.png``).
    Raises:
        SystemExit: two outputs would still be the same file, before anything is written.
    """
    many = len(images) > 1
    planned = [output_file(args, image, many) for image in images]
    inputs = {str(p.resolve()).casefold() for p in images}

    def key(path: Path) -> str:
        return str(path.resolve()).casefold()

    if many:
        counts: dict[str, int] = {}
        for out in planned:
            counts[key(out)] = counts.get(key(out), 0) + 1
        planned = [out.with_name(image.name + out.suffix)
                   if counts[key(out)] > 1 or key(out) in inputs else out
                   for image, out in zip(images, planned)]
    seen: dict[str, Path] = {}
    for image, out in zip(images, planned):
        if key(out) in inputs:
            raise SystemExit(f"error: the output for {image} would overwrite the photo {out}; "
                             "choose another --output_path")
        if key(out) in seen:
            raise SystemExit(f"error: {seen[key(out)]} and {image} would both be written to {out}; "
                             "rename one of them")
        seen[key(out)] = image
    return list(zip(images, planned))


def service_workers(args) -> int:
    """How many photos to send at once: ``--jobs``, else the worker count the matting
    service's ``/health`` reports (``workers``), else 2."""
    if args.jobs is not None:
        if args.jobs < 1:
            raise SystemExit(f"error: --jobs must be at least 1, got {args.jobs}")
        return args.jobs
    import requests

    try:
        health = requests.get(args.server.rstrip("/") + "/health", timeout=5).json()
        workers = int(health.get("workers") or 0)
    except (requests.RequestException, ValueError, TypeError, AttributeError):
        workers = 0  # unreachable: the first photo says so clearly
    return workers if workers >= 1 else 2


def process_photo(runner, args, image_path: Path, out: Path) -> None:
    """Matte one photo and write its output file.

    Raises:
        Exception: whatever went wrong with this photo (the batch reports it and goes on).
    """
    fmt = format_for_path(out)
    if fmt == "jpeg" and needs_alpha_channel(args):
        raise ParameterError("JPEG cannot store transparency: write a .png or .webp file")
    out.write_bytes(runner(image_path, fmt))


def run_batch(runner, args, jobs: list[tuple[Path, Path]], workers: int = 1) -> int:
    """Process ``jobs`` (photo, output) with ``workers`` threads and a progress bar
    (photos done, rate, time left) for more than one photo. A failing photo is reported
    and the rest go on.

    Returns:
        The number of photos that failed.
    Raises:
        SystemExit: a failure that stops every photo (the service unreachable).
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    failures = 0
    show = args.progress and len(jobs) > 1
    with logging_redirect_tqdm(), tqdm(total=len(jobs), unit="photo", disable=not show,
                                       dynamic_ncols=True, file=sys.stderr) as bar, \
            ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        futures = {pool.submit(process_photo, runner, args, image, out): (image, out)
                   for image, out in jobs}
        try:
            for future in as_completed(futures):
                image, out = futures[future]
                try:
                    future.result()
                    log.info("wrote %s", out)
                except SystemExit:
                    raise
                except (UserError, RemoteError, OSError) as exc:  # this photo's fault
                    failures += 1
                    log.error("%s: %s", image, exc)
                except Exception:  # a bug: its traceback, then the next photo
                    failures += 1
                    log.exception("%s: internal error", image)
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if failures and len(jobs) > 1:
        log.error("%d of %d photos failed", failures, len(jobs))
    return failures


def input_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SystemExit(f"error: no images in folder {path}")
        return files
    if not path.exists():
        raise SystemExit(f"error: {path} does not exist")
    return [path]


def report_people(image_path: Path, people: list[dict]) -> None:
    """Log the people found (index, box, selected), so ``--people index:I`` can pick them."""
    if people:
        listed = "; ".join(f"{i}: box {p['box']}{'' if p.get('selected', True) else ' (left out)'}"
                           for i, p in enumerate(people))
        log.info("%s: %d %s found (largest first) - %s", image_path.name, len(people),
                 "person" if len(people) == 1 else "people", listed)


def nobody_found(image_path: Path, args, nobody: bool) -> None:
    """What a photo without people gives: a composite over a background is the photo
    unchanged (the original's rule, said in a warning); a cutout, alpha matte, foreground
    or transparent composite would be an empty file, so the photo fails instead.

    Raises:
        NoPersonError: ``nobody`` and the output would be empty.
    """
    if not nobody:
        return
    if args.output_type in ("cutout", "alpha", "foreground") or args.background == "transparent":
        raise NoPersonError(f"no person found, so the {args.output_type} would be empty; "
                            "nothing written (try --output-type composite to keep the photo "
                            "as it is)")
    log.warning("%s: no person found; the output is the photo unchanged", image_path.name)


class RemoteError(RuntimeError):
    """The matting service refused a photo (its JSON error message is kept)."""


class RemoteRunner:
    """Calls the matting service; the response is already the encoded output file."""

    def __init__(self, args):
        import requests

        self.requests, self.args = requests, args
        self._local = threading.local()  # a Session per thread: photos go in parallel
        bg = Path(args.background)
        self.background_file = bg.read_bytes() if bg.is_file() else None

    def __call__(self, image_path: Path, fmt: str) -> bytes:
        args = self.args
        files = {"image": (image_path.name, image_path.read_bytes())}
        data = {"output": args.output_type, "fit": args.fit, "format": fmt,
                "people": args.people}
        if self.background_file is not None:
            files["background"] = ("background", self.background_file)
        else:
            data["background"] = args.background
        try:
            if not hasattr(self._local, "session"):
                self._local.session = self.requests.Session()
            response = self._local.session.post(args.server.rstrip("/") + "/matte", files=files,
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
        nobody_found(image_path, args, response.headers.get("X-Person-Found") == "false")
        report_people(image_path, json.loads(response.headers.get("X-People") or "[]"))
        return response.content


class LocalRunner:
    """Runs the engine's :class:`core.pipeline.Pipeline` in this process (no services)."""

    def __init__(self, args):
        from core.pipeline import Pipeline

        self.args = args
        self.people = parse_selection(args.people)
        self.pipeline = Pipeline.in_process(args.segmenter, args.matter)
        bg = Path(args.background)
        self.background = decode_image(bg.read_bytes()) if bg.is_file() else args.background

    def __call__(self, image_path: Path, fmt: str) -> bytes:
        from core.pipeline import render

        data = image_path.read_bytes()
        result = self.pipeline.run(decode_image(data), encoded=data, people=self.people)
        nobody_found(image_path, self.args, not result.person_found)
        report_people(image_path, [p.as_dict() for p in result.people])
        return encode_image(render(result, self.args.output_type, self.background, self.args.fit), fmt)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    images = input_files(Path(args.image_path))
    jobs = plan_outputs(args, images)  # before anything is written
    try:
        parse_selection(args.people)  # a bad --people stops here, before any photo
        runner = LocalRunner(args) if args.local else RemoteRunner(args)
    except (ConfigError, BackendUnavailable, UserError) as exc:
        log.error("%s", exc)
        return 2
    workers = 1 if args.local else service_workers(args)
    return 1 if run_batch(runner, args, jobs, workers) else 0


if __name__ == "__main__":
    sys.exit(main())
