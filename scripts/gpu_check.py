"""GPU check: FBA Matting and Mask R-CNN on CPU and on CUDA, in one short run (issue 17).

    bash scripts/gpu_check.sh                                 # the whole check
    python scripts/gpu_check.py --out results/gpu_check.json  # the same, without the wrapper
    python scripts/gpu_check.py --quick --out /tmp/gc.json    # CPU smoke run: one small photo

Both backends get random-weight files made by :mod:`models.random_weights` (the tests'
recipes; the published files cannot be downloaded where this runs) and go through their
real classes, :class:`~core.matters.fba.FBAMatter` (``predict``, at full size:
``max_size=0``) and :class:`~core.segmenters.maskrcnn.MaskRCNNSegmenter` (``detect``, the
default v1, inference size 480, 1000 proposals, score 0.6: the segmentation service's
settings; ``--quick`` uses 320 and 300 to save CPU time). Each runs on every photo at
every size in four modes:

- ``cpu``: float32 on the CPU, the reference;
- ``cuda-fp32``: float32 with TF32 off (IEEE convolutions and matmuls); limit 1e-3;
- ``cuda-tf32``: TF32 convolutions, PyTorch's default for cuDNN on Ampere and later, so what
  the backends get with ``half=False``; limit 1e-2 (TF32 keeps float16's 10-bit mantissa);
- ``cuda-half``: the backends' ``half=True`` (FBA ``.half()`` with a float32 fusion; Mask
  R-CNN's backbone under float16 autocast); limit 1e-2.

Photos: ``samples/astronaut.jpg``, ``samples/video/room.jpg`` and the first ``--portraits``
photos of ``portraits/images`` in the evaluation data, when found. Each is centre-cropped to
16:9 and resized to 720p (1280x720), 1080p (1920x1080) and 4K (3840x2160). The trimap comes
from the portrait's mask where there is one, else from an upright ellipse, through
:func:`core.trimap.mask_to_trimap` with a band that scales with the person.

Figures, per backend, size and mode: seconds per photo (median; on CUDA after one untimed
warm-up call per size), peak GPU memory (``torch.cuda.max_memory_allocated`` over that
size's calls, the model's weights included), and the largest absolute difference from the
reference over all photos: FBA alpha, FBA foreground (where it is visible: alpha > 0 in both
runs and equal to 1 in both or neither, since the pipeline swaps F for the image where alpha
is exactly 1), Mask R-CNN soft mask (what ``segment`` returns). The reference is the CPU run
where there is one, else the ``cuda-fp32`` run.

Bounds, so that it ends within 5 minutes on the GPU machine: the CPU reference runs at
720p and 1080p on every photo and at 4K on ``--cpu-4k-photos`` (1) photo only (FBA at 4K is
11 TFLOP: over a minute on two cores); CUDA work runs first, then the CPU's, Mask R-CNN
before FBA; a call that would end after ``--budget`` seconds (estimated from the previous
call) is skipped and its row says so.

Without CUDA every CUDA row says "no CUDA". A CUDA call that runs out of memory (4K on a
small GPU) is reported as "OOM" in its row and the check goes on. Writes ``--out`` (JSON)
and the same path with ``.md`` (a Markdown table), and prints the table. Exit status 1 when
a row FAILs or errs, else 0. Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
MODES = ("cpu", "cuda-fp32", "cuda-tf32", "cuda-half")
CUDA_MODES = MODES[1:]
LIMITS = {"cuda-fp32": 1e-3, "cuda-tf32": 1e-2, "cuda-half": 1e-2}
BACKENDS = ("fba", "maskrcnn")
FIGURES = {"fba": ("alpha", "foreground"), "maskrcnn": ("mask",)}
SAMPLE_PHOTOS = (REPO / "samples" / "astronaut.jpg", REPO / "samples" / "video" / "room.jpg")
QUICK_SIZE = "320x180"
DEFAULT_BUDGET_S = 240.0
BAND_SCALE = 0.05  # trimap band: 0.05 * sqrt(person area) / kernel size iterations


def portrait_dirs() -> list[Path]:
    """Where the evaluation portraits may be: ``$EVAL_DATA``, ``../shared/data`` (beside
    the checkout, as the tests look) and ``shared/data`` (inside it, which travels)."""
    roots = [Path(os.environ["EVAL_DATA"])] if os.environ.get("EVAL_DATA") else []
    roots += [REPO.parent / "shared" / "data", REPO / "shared" / "data"]
    return [root / "portraits" / "images" for root in roots]


def parse_size(name: str) -> tuple[str, tuple[int, int]]:
    """``720p`` / ``1080p`` / ``4k`` or ``WIDTHxHEIGHT`` -> (label, (width, height)).

    Raises:
        ValueError: anything else.
    """
    key = name.lower()
    if key in SIZES:
        return key, SIZES[key]
    try:
        width, height = (int(v) for v in key.split("x"))
    except ValueError:
        raise ValueError(f"size must be one of {sorted(SIZES)} or WIDTHxHEIGHT, got {name!r}") \
            from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise ValueError(f"size {name!r} out of range (16 to 8192 pixels a side)")
    return key, (width, height)


# ---------------------------------------------------------------------------- photos

@dataclass
class Photo:
    """A photo and its person mask at their own size.

    image: ``uint8`` RGB ``H x W x 3``; mask: ``float32`` ``H x W`` of 0 / 1; mask_source:
    ``"mask file"`` or ``"ellipse"``.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    mask_source: str


def ellipse_mask(height: int, width: int) -> np.ndarray:
    """An upright ellipse standing in for a person: centre (0.5 W, 0.6 H), semi-axes
    (0.22 W, 0.45 H). ``float32`` ``H x W`` of 0 / 1."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = ((xx - 0.5 * width) / (0.22 * width)) ** 2 + ((yy - 0.6 * height) / (0.45 * height)) ** 2
    return (r <= 1).astype(np.float32)


def load_photo(path: Path) -> Photo:
    """Read ``path``; its mask is ``../masks/<stem>.png`` when that exists (the portraits'
    layout; resized to the photo with nearest neighbour), else :func:`ellipse_mask`."""
    import cv2

    from core.images import read_image_file

    image = read_image_file(path)
    h, w = image.shape[:2]
    mask_file = path.parent.parent / "masks" / f"{path.stem}.png"
    if mask_file.is_file():
        mask = read_image_file(mask_file)[:, :, 0]
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        return Photo(path.name, image, (mask >= 128).astype(np.float32), "mask file")
    return Photo(path.name, image, ellipse_mask(h, w), "ellipse")


def find_photos(paths: list[str] | None, portraits: int) -> list[Path]:
    """``paths`` (files, or folders whose ``*.jpg`` / ``*.png`` are all taken) when given,
    else the two samples and the first ``portraits`` portraits found (sorted by name)."""
    if paths:
        found = []
        for item in map(Path, paths):
            if item.is_dir():
                found += sorted(p for p in item.iterdir() if p.suffix.lower() in
                                (".jpg", ".jpeg", ".png"))
            elif item.is_file():
                found.append(item)
            else:
                raise FileNotFoundError(f"no photo at {item}")
        if not found:
            raise FileNotFoundError(f"no photos in {paths}")
        return found
    found = [p for p in SAMPLE_PHOTOS if p.is_file()]
    if portraits > 0:
        folder = next((d for d in portrait_dirs() if d.is_dir()), None)
        if folder is not None:
            found += sorted(folder.glob("*.jpg"))[:portraits]
    return found


def fit(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Centre-crop ``image`` to the aspect ratio of ``size`` (width, height) and resize it
    to exactly that: area averaging down, bicubic up, nearest neighbour for masks."""
    import cv2

    width, height = size
    h, w = image.shape[:2]
    if w * height > h * width:  # too wide
        crop = max(1, round(h * width / height))
        image = image[:, (w - crop) // 2:(w - crop) // 2 + crop]
    else:
        crop = max(1, round(w * height / width))
        image = image[(h - crop) // 2:(h - crop) // 2 + crop]
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif image.shape[1] >= width:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interpolation)


def prepare(photo: Photo, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The photo at ``size``: ``uint8`` RGB ``H x W x 3`` and its ``uint8`` trimap
    (0 / 128 / 255) from the resized mask."""
    from core.trimap import TrimapParams, mask_to_trimap

    image = fit(photo.image, size)
    mask = fit(photo.mask, size, nearest=True)
    trimap = mask_to_trimap(mask, TrimapParams.binary(band_scale=BAND_SCALE))
    return image, trimap


# ---------------------------------------------------------------------------- comparisons

def compare_fba(ref: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray]
                ) -> dict:
    """Largest absolute differences between two FBA results ``(alpha, fg)``.

    Args:
        ref, other: ``alpha`` ``float32`` ``H x W`` and ``fg`` ``float32`` ``H x W x 3``,
            both in ``[0, 1]``.
    Returns:
        ``{"alpha": float, "foreground": float, "foreground_pixels_left_out": int}``:
        alpha over every pixel; the foreground where it is visible in both runs (alpha > 0)
        and alpha is 1 in both or in neither. Where only one run reached alpha = 1 exactly,
        the pipeline shows the image in one and FBA's F in the other, a step no tolerance
        follows; those pixels are counted instead.
    """
    a_ref, f_ref = ref
    a_other, f_other = other
    if a_ref.shape != a_other.shape or f_ref.shape != f_other.shape:
        raise ValueError(f"shapes differ: {a_ref.shape} / {a_other.shape}")
    visible = (a_ref > 0) & (a_other > 0)
    same_kind = (a_ref == 1) == (a_other == 1)
    where = visible & same_kind
    fg_diff = np.abs(f_ref - f_other).max(axis=2)[where]
    return {"alpha": float(np.abs(a_ref - a_other).max()),
            "foreground": float(fg_diff.max()) if fg_diff.size else 0.0,
            "foreground_pixels_left_out": int(np.count_nonzero(visible & ~same_kind))}


def compare_masks(ref: tuple[np.ndarray, int], other: tuple[np.ndarray, int]) -> dict:
    """Largest absolute difference between two Mask R-CNN soft masks.

    Args:
        ref, other: ``(mask, detections)``: ``float32`` ``H x W`` in ``[0, 1]`` and the
            number of people detected.
    Returns:
        ``{"mask": float, "mask_pixels_off_by_0.1": fraction, "detections": [ref, other]}``.
    """
    diff = np.abs(ref[0] - other[0])
    return {"mask": float(diff.max()), "mask_pixels_off_by_0.1": float((diff > 0.1).mean()),
            "detections": [int(ref[1]), int(other[1])]}


# ---------------------------------------------------------------------------- running

@dataclass
class Run:
    """One backend on one photo at one size in one mode. ``status``: ``"ok"``, ``"OOM"``,
    ``"error: ..."``, ``"skipped: ..."`` or ``"no CUDA"``; ``seconds``: wall-clock seconds
    of the backend call; ``diff``: from :func:`compare_fba` / :func:`compare_masks`."""

    backend: str
    photo: str
    size: str
    mode: str
    status: str = "ok"
    seconds: float | None = None
    compared_with: str | None = None
    diff: dict = field(default_factory=dict)


def out_of_memory_types() -> tuple[type, ...]:
    import torch

    return (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), MemoryError)


def guarded(fn):
    """``(fn(), "ok")``, or ``(None, "OOM")`` when it ran out of memory (CUDA's
    ``OutOfMemoryError``, a CPU allocation failure), or ``(None, "error: Type: message")``
    for any other exception (its traceback goes to stderr). Frees cached GPU memory after a
    failure."""
    try:
        return fn(), "ok"
    except out_of_memory_types():
        status = "OOM"
    except Exception as exc:  # reported in the row; the check goes on with the next call
        message = (str(exc).splitlines() or [""])[0][:200]
        if isinstance(exc, RuntimeError) and ("can't allocate memory" in message
                                              or "out of memory" in message):
            status = "OOM"
        else:
            traceback.print_exc()
            status = f"error: {type(exc).__name__}: {message}"
    free_memory()
    return None, status


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def precision(mode: str):
    """TF32 settings for ``mode``: off for ``cuda-fp32`` (IEEE convolutions and matmuls),
    on for cuDNN convolutions in ``cuda-tf32``; untouched otherwise. Restored on exit.
    Uses ``torch.backends.*.fp32_precision`` where torch has it (mixing it with the older
    ``allow_tf32`` flags is an error there), else ``allow_tf32``."""
    import torch

    if mode not in ("cuda-fp32", "cuda-tf32"):
        yield
        return
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    if hasattr(conv, "fp32_precision"):
        saved = conv.fp32_precision, matmul.fp32_precision
        conv.fp32_precision = "ieee" if mode == "cuda-fp32" else "tf32"
        if mode == "cuda-fp32":
            matmul.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision, matmul.fp32_precision = saved
    else:
        saved = torch.backends.cudnn.allow_tf32, matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = mode == "cuda-tf32"
        if mode == "cuda-fp32":
            matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = saved


def precision_flags() -> dict:
    """The TF32 flags in force, for the record."""
    import torch

    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    if hasattr(conv, "fp32_precision"):
        return {"cudnn.conv.fp32_precision": conv.fp32_precision,
                "cuda.matmul.fp32_precision": matmul.fp32_precision}
    return {"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "cuda.matmul.allow_tf32": matmul.allow_tf32}


class Backend:
    """Loads one backend for a mode and runs it on a prepared photo."""

    def __init__(self, name: str, weights: Path, variant: str = "v1",
                 inference_size: int = 480, proposals: int = 1000):
        self.name, self.weights, self.variant = name, weights, variant
        self.inference_size, self.proposals = inference_size, proposals

    def load(self, mode: str):
        device = "cpu" if mode == "cpu" else "cuda"
        half = mode == "cuda-half"
        if self.name == "fba":
            from core.matters.fba import FBAMatter

            return FBAMatter(weights_path=self.weights, device=device, half=half, max_size=0)
        from core.segmenters.maskrcnn import MaskRCNNSegmenter

        return MaskRCNNSegmenter(variant=self.variant, weights_path=self.weights,
                                 device=device, half=half,
                                 inference_size=self.inference_size, proposals=self.proposals)

    def run(self, model, image: np.ndarray, trimap: np.ndarray):
        """FBA: ``(alpha, fg)``; Mask R-CNN: ``(soft mask, detections)`` (the mask is what
        ``segment`` returns: every detection's mask summed and clipped to ``[0, 1]``)."""
        if self.name == "fba":
            alpha, fg, _ = model.predict(image.astype(np.float32) / 255.0, trimap)
            return alpha, fg
        _, masks = model.detect(image)
        if len(masks) == 0:
            return np.zeros(image.shape[:2], np.float32), 0
        return np.clip(masks.sum(axis=0), 0.0, 1.0).astype(np.float32), len(masks)

    def compare(self, ref, other) -> dict:
        return compare_fba(ref, other) if self.name == "fba" else compare_masks(ref, other)

    @staticmethod
    def clear_cache() -> None:
        from core.matters import fba
        from core.segmenters import maskrcnn

        fba.clear_cache()
        maskrcnn.clear_cache()
        free_memory()


class Check:
    """The whole check: inputs, the runs, their results, the clock."""

    def __init__(self, args, photos: list[Photo], sizes: dict[str, tuple[int, int]],
                 cuda: bool):
        self.args = args
        self.photos = photos
        self.sizes = sizes
        self.cuda = cuda
        self.start = time.perf_counter()
        self.runs: list[Run] = []
        self.peak_gib: dict[tuple[str, str, str], float] = {}
        self.outputs: dict[tuple, object] = {}  # (backend, photo, size, mode) -> result
        self.inputs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self.last_seconds: dict[tuple[str, str], float] = {}  # (backend, mode) -> s/px

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def prepared(self, photo: Photo, size: str):
        key = (photo.name, size)
        if key not in self.inputs:
            self.inputs[key] = prepare(photo, self.sizes[size])
        return self.inputs[key]

    def fits_budget(self, backend: str, mode: str, size: str) -> bool:
        """Whether a call, estimated from the last one of this backend and mode scaled by
        pixel count, ends within ``--budget`` seconds."""
        per_pixel = self.last_seconds.get((backend, mode))
        width, height = self.sizes[size]
        expected = per_pixel * width * height if per_pixel else 0.0
        return self.elapsed() + expected <= self.args.budget

    def cpu_photos(self, size: str) -> list[Photo]:
        if size not in self.args.cpu_sizes:
            return []
        if self.sizes[size] == SIZES["4k"]:
            return self.photos[:self.args.cpu_4k_photos]
        return self.photos

    def reference_for(self, backend: str, photo: str, size: str, mode: str):
        """The CPU result when one will exist (compared later), else ``cuda-fp32``'s."""
        if any(p.name == photo for p in self.cpu_photos(size)):
            return "cpu", None
        if mode == "cuda-fp32":
            return None, None
        return "cuda-fp32", self.outputs.get((backend, photo, size, "cuda-fp32"))

    def needed_later(self, backend: str, photo: str, size: str, mode: str) -> bool:
        later = any(p.name == photo for p in self.cpu_photos(size))
        return later or mode == "cuda-fp32"

    def log(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {message}", file=sys.stderr, flush=True)

    # -- CUDA phase
    def run_cuda(self, backend: Backend) -> None:
        import torch

        for mode in CUDA_MODES:
            if not self.cuda:
                self.runs += [Run(backend.name, p.name, size, mode, "no CUDA")
                              for size in self.sizes for p in self.photos]
                continue
            with precision(mode):
                model, status = guarded(lambda m=mode: backend.load(m))
                if model is None:
                    self.runs += [Run(backend.name, p.name, size, mode, f"load {status}")
                                  for size in self.sizes for p in self.photos]
                    continue
                for size in self.sizes:
                    torch.cuda.reset_peak_memory_stats()
                    warm = False
                    for photo in self.photos:
                        run = Run(backend.name, photo.name, size, mode)
                        self.runs.append(run)
                        if not self.fits_budget(backend.name, mode, size):
                            run.status = "skipped: time budget"
                            continue
                        image, trimap = self.prepared(photo, size)
                        if not warm:
                            _, status = guarded(lambda: backend.run(model, image, trimap))
                            warm = status == "ok"
                        self.call(backend, model, run, image, trimap)
                    self.peak_gib[(backend.name, size, mode)] = \
                        torch.cuda.max_memory_allocated() / 2 ** 30
                model = None  # drop the last reference before the cache is cleared
                backend.clear_cache()

    def call(self, backend: Backend, model, run: Run, image, trimap) -> None:
        import torch

        def timed():
            start = time.perf_counter()
            result = backend.run(model, image, trimap)
            if run.mode != "cpu":
                torch.cuda.synchronize()
            return result, time.perf_counter() - start

        timed_result, run.status = guarded(timed)
        if timed_result is None:
            self.log(f"{run.backend} {run.photo} {run.size} {run.mode}: {run.status}")
            return
        result, run.seconds = timed_result
        width, height = self.sizes[run.size]
        self.last_seconds[(run.backend, run.mode)] = run.seconds / (width * height)
        key = (run.backend, run.photo, run.size, run.mode)
        if run.mode == "cpu":
            self.compare_with_cpu(backend, run, result)
        else:
            ref_mode, ref = self.reference_for(run.backend, run.photo, run.size, run.mode)
            if ref_mode == "cuda-fp32" and ref is not None:
                run.compared_with = "cuda-fp32"
                run.diff = backend.compare(ref, result)
            if self.needed_later(run.backend, run.photo, run.size, run.mode):
                self.outputs[key] = result
        self.log(f"{run.backend} {run.photo} {run.size} {run.mode}: {run.seconds:.3f} s"
                 + (f", {run.diff}" if run.diff else ""))

    def compare_with_cpu(self, backend: Backend, cpu_run: Run, result) -> None:
        for run in self.runs:
            if (run.backend, run.photo, run.size) != (cpu_run.backend, cpu_run.photo,
                                                       cpu_run.size) or run.mode == "cpu":
                continue
            other = self.outputs.pop((run.backend, run.photo, run.size, run.mode), None)
            if other is not None:
                run.compared_with = "cpu"
                run.diff = backend.compare(result, other)
                self.log(f"  {run.mode} vs cpu: {run.diff}")

    def compare_leftovers(self, backend: Backend) -> None:
        """CUDA results whose CPU reference did not run (time budget, OOM): compared with
        ``cuda-fp32``'s where that ran; then all stored results are dropped."""
        stored = {k: v for k, v in self.outputs.items() if k[0] == backend.name}
        for run in self.runs:
            key = (run.backend, run.photo, run.size, run.mode)
            if run.mode in ("cpu", "cuda-fp32") or key not in stored:
                continue
            ref = stored.get((run.backend, run.photo, run.size, "cuda-fp32"))
            if ref is not None:
                run.compared_with = "cuda-fp32"
                run.diff = backend.compare(ref, stored[key])
        for key in stored:
            del self.outputs[key]

    # -- CPU phase
    def run_cpu(self, backend: Backend) -> None:
        model, status = guarded(lambda: backend.load("cpu"))
        for size in self.sizes:
            chosen = {p.name for p in self.cpu_photos(size)}
            for photo in self.photos:
                run = Run(backend.name, photo.name, size, "cpu")
                self.runs.append(run)
                if photo.name not in chosen:
                    run.status = "skipped: no CPU reference at this size"
                elif model is None:
                    run.status = f"load {status}"
                elif not self.fits_budget(backend.name, "cpu", size):
                    run.status = "skipped: time budget"
                else:
                    image, trimap = self.prepared(photo, size)
                    self.call(backend, model, run, image, trimap)
        self.compare_leftovers(backend)
        del model
        backend.clear_cache()


# ---------------------------------------------------------------------------- summary

def verdict(mode: str, runs: list[Run], limit: float | None, figures: tuple[str, ...]) -> str:
    """One row's result from its runs.

    ``cpu`` rows: ``"reference"`` when any run, else why not. CUDA rows: ``"no CUDA"``;
    ``"error: ..."`` (the first) when a call failed; ``"FAIL"`` when a compared run is over
    ``limit``; ``"OOM"`` when every call ran out of memory; ``"PASS"`` when every compared
    run is within it, with ``"(OOM on n of m photos)"`` when some ran out of memory;
    ``"not compared (...)"`` when nothing could be compared; ``"skipped: ..."`` when no
    call ran.
    """
    statuses = [r.status for r in runs]
    if mode != "cpu" and statuses and all(s == "no CUDA" for s in statuses):
        return "no CUDA"
    errors = [s for s in statuses if s.startswith(("error", "load"))]
    if errors:
        return errors[0]
    ran = [r for r in runs if r.status == "ok"]
    ooms = statuses.count("OOM")
    if not ran:
        if ooms:
            return "OOM"
        return next((s for s in statuses if s.startswith("skipped")), "not run")
    if mode == "cpu":
        return "reference" + (f" (OOM on {ooms} of {len(runs)} photos)" if ooms else "")
    compared = [r for r in ran if r.diff]
    if not compared:
        return "not compared (no reference at this size)"
    worst = max(max(r.diff[f] for f in figures) for r in compared)
    result = "PASS" if worst <= limit else "FAIL"
    notes = []
    if ooms:
        notes.append(f"OOM on {ooms} of {len(runs)} photos")
    if len(compared) < len(ran):
        notes.append(f"{len(compared)} of {len(ran)} photos compared")
    skipped = sum(s.startswith("skipped") for s in statuses)
    if skipped:
        notes.append(f"{skipped} of {len(runs)} photos skipped for the time budget")
    return result + (f" ({'; '.join(notes)})" if notes else "")


def summarise(check: Check) -> list[dict]:
    rows = []
    for backend in BACKENDS:
        for size in check.sizes:
            for mode in MODES:
                runs = [r for r in check.runs if (r.backend, r.size, r.mode) ==
                        (backend, size, mode)]
                timed = [r.seconds for r in runs if r.seconds is not None]
                compared = [r for r in runs if r.diff]
                diffs = {f: (max(r.diff[f] for r in compared) if compared else None)
                         for f in FIGURES[backend]}
                limit = LIMITS.get(mode)
                row = {
                    "backend": backend, "size": size,
                    "pixels": "x".join(map(str, check.sizes[size])), "mode": mode,
                    "photos": len(timed),
                    "seconds_per_photo": statistics.median(timed) if timed else None,
                    "seconds_per_photo_max": max(timed) if timed else None,
                    "peak_gpu_gib": check.peak_gib.get((backend, size, mode)),
                    "compared_with": ", ".join(sorted({r.compared_with for r in compared}))
                    or None,
                    "max_abs_diff": diffs,
                    "limit": limit,
                    "result": verdict(mode, runs, limit, FIGURES[backend]),
                }
                if backend == "fba" and compared:
                    row["foreground_pixels_left_out"] = sum(
                        r.diff["foreground_pixels_left_out"] for r in compared)
                if backend == "maskrcnn" and compared:
                    row["detections"] = [r.diff["detections"] for r in compared]
                    row["mask_pixels_off_by_0.1"] = max(r.diff["mask_pixels_off_by_0.1"]
                                                        for r in compared)
                rows.append(row)
    return rows


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


MD_COLUMNS = ("backend", "size", "mode", "photos", "seconds per photo (median)",
              "peak GPU memory (GiB)", "compared with", "max abs diff alpha",
              "max abs diff foreground", "max abs diff mask", "detections (ref / this)",
              "limit", "result")


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# GPU check, {report['date']}", "",
             f"Machine: {m['platform']}, {m['cpu_count']} CPU cores, torch {m['torch']} "
             f"({m['torch_threads']} threads), torchvision {m['torchvision']}; "
             + (f"GPU {m['gpu']} ({m['gpu_memory_gib']:.0f} GiB), CUDA {m['cuda']}, "
                f"cuDNN {m['cudnn']}." if m["gpu"] else "no CUDA."),
             f"Photos: {', '.join(report['settings']['photos'])}. "
             f"Random weights; FBA at full size, Mask R-CNN {report['settings']['variant']} "
             f"at inference size {report['settings']['maskrcnn']['inference_size']} with "
             f"{report['settings']['maskrcnn']['proposals']} proposals. "
             f"{report['elapsed_s']:.0f} s in all. "
             f"Overall: {report['result']}.", "",
             "| " + " | ".join(MD_COLUMNS) + " |", "|" + "---|" * len(MD_COLUMNS)]
    for row in report["rows"]:
        diffs = row["max_abs_diff"]
        detections = row.get("detections")
        size = row["size"] if row["size"] == row["pixels"] else f"{row['size']} ({row['pixels']})"
        mask = fmt(diffs.get("mask"), ".1e")
        if "mask_pixels_off_by_0.1" in row:
            mask += f" ({100 * row['mask_pixels_off_by_0.1']:.2g} % of pixels > 0.1)"
        lines.append("| " + " | ".join([
            row["backend"], size, row["mode"], str(row["photos"]),
            fmt(row["seconds_per_photo"], ".3f"), fmt(row["peak_gpu_gib"], ".2f"),
            row["compared_with"] or "-", fmt(diffs.get("alpha"), ".1e"),
            fmt(diffs.get("foreground"), ".1e"), mask,
            ", ".join(f"{a}/{b}" for a, b in detections) if detections else "-",
            fmt(row["limit"], ".0e"), row["result"]]) + " |")
    lines += ["", "Modes: cpu = float32 reference; cuda-fp32 = float32 with TF32 off; "
              "cuda-tf32 = TF32 convolutions (PyTorch's default, what half=False gets); "
              "cuda-half = the backends' half=True. Foreground compared where visible "
              "(alpha > 0) and alpha is 1 in both runs or in neither."]
    return "\n".join(lines) + "\n"


def machine() -> dict:
    import cv2
    import torch
    import torchvision

    cuda = torch.cuda.is_available()
    props = torch.cuda.get_device_properties(0) if cuda else None
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__,
            "opencv": cv2.__version__, "torch_threads": torch.get_num_threads(),
            "gpu": props.name if props else None,
            "gpu_memory_gib": props.total_memory / 2 ** 30 if props else None,
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "default_precision": precision_flags()}


def overall(rows: list[dict]) -> str:
    results = [r["result"] for r in rows if r["mode"] != "cpu"]
    if any(r.startswith(("FAIL", "error", "load")) for r in results):
        return "FAIL"
    if results and all(r == "no CUDA" for r in results):
        return "no CUDA"
    return "PASS" if any(r.startswith("PASS") for r in results) else "nothing compared"


# ---------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "results" / "gpu_check.json"),
                        help="JSON file to write; the Markdown table goes beside it (.md)")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES),
                        help="720p, 1080p, 4k or WIDTHxHEIGHT (default: %(default)s)")
    parser.add_argument("--cpu-sizes", nargs="+", default=list(SIZES),
                        help="sizes with a CPU reference (default: %(default)s)")
    parser.add_argument("--cpu-4k-photos", type=int, default=1,
                        help="photos with a CPU reference at 4K (default: %(default)s)")
    parser.add_argument("--photos", nargs="+", default=None,
                        help="photo files or folders (default: the two samples and "
                             "--portraits portraits)")
    parser.add_argument("--portraits", type=int, default=2,
                        help="evaluation portraits to add to the samples (default: %(default)s)")
    parser.add_argument("--variant", choices=("v1", "v2"), default="v1",
                        help="Mask R-CNN variant (default: %(default)s)")
    parser.add_argument("--inference-size", type=int, default=480,
                        help="Mask R-CNN inference size (default: %(default)s)")
    parser.add_argument("--proposals", type=int, default=1000,
                        help="Mask R-CNN proposals (default: %(default)s)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                        help="seconds after which no call starts (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"one sample photo at {QUICK_SIZE}, no portraits, Mask R-CNN "
                             f"at 320 with 300 proposals (the tests' run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.cpu_sizes, args.portraits = [QUICK_SIZE], [QUICK_SIZE], 0
        args.inference_size, args.proposals = 320, 300
        args.photos = args.photos or [str(SAMPLE_PHOTOS[0])]
    sizes = dict(parse_size(s) for s in args.sizes)
    args.cpu_sizes = [parse_size(s)[0] for s in args.cpu_sizes]
    return args, sizes


def main(argv=None) -> int:
    args, sizes = parse_args(argv)
    import torch

    from core.weights import MASKRCNN_V1, MASKRCNN_V2
    from models.random_weights import save_fba, save_maskrcnn

    photos = [load_photo(p) for p in find_photos(args.photos, args.portraits)]
    if not photos:
        raise FileNotFoundError("no photos: samples/ is missing")
    cuda = torch.cuda.is_available()
    check = Check(args, photos, sizes, cuda)
    check.log(f"{len(photos)} photos, sizes {list(sizes)}, "
              f"{'CUDA: ' + torch.cuda.get_device_name(0) if cuda else 'no CUDA'}")
    with tempfile.TemporaryDirectory() as tmp:
        record = MASKRCNN_V1 if args.variant == "v1" else MASKRCNN_V2
        backends = {
            "fba": Backend("fba", save_fba(Path(tmp) / "FBA.pth")),
            "maskrcnn": Backend("maskrcnn", save_maskrcnn(args.variant,
                                                          Path(tmp) / record.filename),
                                args.variant, args.inference_size, args.proposals)}
        check.log("random weights written")
        # CUDA first (fast, the point of the check), then the CPU references, cheap first.
        for name in BACKENDS:
            check.run_cuda(backends[name])
        for name in ("maskrcnn", "fba"):
            check.run_cpu(backends[name])
    rows = summarise(check)
    report = {
        "check": "gpu_check", "date": dt.datetime.now().isoformat(timespec="seconds"),
        "elapsed_s": check.elapsed(), "machine": machine(),
        "settings": {"sizes": {k: list(v) for k, v in sizes.items()},
                     "cpu_sizes": args.cpu_sizes, "cpu_4k_photos": args.cpu_4k_photos,
                     "photos": [f"{p.name} ({p.image.shape[1]}x{p.image.shape[0]}, "
                                f"trimap from {p.mask_source})" for p in photos],
                     "variant": args.variant, "budget_s": args.budget,
                     "fba": {"max_size": 0},
                     "maskrcnn": {"inference_size": args.inference_size,
                                  "proposals": args.proposals, "score_threshold": 0.6}},
        "limits": LIMITS, "modes": list(MODES), "rows": rows,
        "runs": [asdict(r) for r in check.runs],
    }
    report["result"] = overall(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    return 1 if report["result"] == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
