"""Time the model backends per call, with random weights (same cost as the real ones).

    python benchmarks/bench_models.py                      # FBA and Mask R-CNN v1/v2, CPU
    python benchmarks/bench_models.py --only fba --sizes 1280x720 --repeats 3
    python benchmarks/bench_models.py --device cuda --half

Prints a Markdown table: wall-clock seconds per call and process CPU seconds per call (all
threads; median of ``--repeats`` after one warm-up) of
``FBAMatter.predict`` and ``MaskRCNNSegmenter.segment`` on a synthetic photo-sized image
with a person-shaped trimap. Random weights compute the same operations as the published
ones, except for Mask R-CNN's mask head, which runs once per detected object: the main rows
use random weights that detect nothing, and one row per variant gives the extra cost per
detected person (measured with weights that call every proposal a person).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import weights

DEFAULT_SIZES = ("360x240", "854x480", "1280x720")


def synthetic(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth image and a trimap with an ellipse-shaped person and a 5% unknown band."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 17.0)], -1)
    r = ((xx - width / 2) / (0.25 * width)) ** 2 + ((yy - 0.6 * height) / (0.45 * height)) ** 2
    band = 0.05 * 2
    trimap = np.full((height, width), 128, np.uint8)
    trimap[r < 1 - band] = 255
    trimap[r > 1 + band] = 0
    return image.astype(np.float32), trimap


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds (all threads) of ``fn()`` after a warm-up.

    On a shared machine the wall time grows with the others' load; the CPU time does not,
    so wall ~= CPU / threads says the run had the cores to itself.
    """
    fn()  # warm-up (allocations, cuDNN autotune)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def sync(device: str):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def bench_fba(sizes, repeats, device, half, max_size, folder: Path):
    import torch

    from core.matters.fba import FBAMatter
    from core.matters.fba_net import FBANet

    path = folder / "FBA.pth"
    torch.save(FBANet().state_dict(), path)
    matter = FBAMatter(weights_path=path, device=device, half=half, max_size=max_size)
    rows = []
    for width, height in sizes:
        image, trimap = synthetic(width, height)
        seconds = timed(lambda i=image, t=trimap: (matter.predict(i, t), sync(matter.device)),
                        repeats)
        capped = max_size and max(width, height) > max_size
        note = f"run at max_size {max_size}" if capped else ""
        rows.append(("FBA" + (" fp16" if matter.half else ""), f"{width}x{height}", "-",
                     *seconds, note))
        print(f"  FBA {width}x{height}: {seconds[0]:.2f} s", file=sys.stderr, flush=True)
    return rows


def _random_maskrcnn(variant: str, path: Path, everyone_is_a_person: bool) -> None:
    """Random weights whose box classifier says "background" everywhere (so the mask head,
    whose cost depends on how many objects a photo has, does not run), or "person"
    everywhere (so it runs on the maximum of 100 detections)."""
    import torch

    from core.segmenters.maskrcnn import build_model

    state = build_model(variant).state_dict()
    weight = state["roi_heads.box_predictor.cls_score.weight"]
    bias = state["roi_heads.box_predictor.cls_score.bias"]
    weight.zero_()
    bias.zero_()
    bias[weights.MASKRCNN_V1.meta["categories"].index("person") if everyone_is_a_person
         else 0] = 20.0
    torch.save(state, path)


def bench_maskrcnn(variants, sizes, inference_sizes, repeats, device, proposals,
                   folder: Path):
    from core.segmenters.maskrcnn import MaskRCNNSegmenter

    rows = []
    for variant in variants:
        record = getattr(weights, f"MASKRCNN_{variant.upper()}")
        path = folder / record.filename
        _random_maskrcnn(variant, path, everyone_is_a_person=False)
        for inference_size in inference_sizes:
            seg = MaskRCNNSegmenter(variant=variant, weights_path=path, device=device,
                                    inference_size=inference_size, proposals=proposals)
            for width, height in sizes:
                image = (synthetic(width, height)[0] * 255).astype(np.uint8)
                seconds = timed(lambda s=seg, i=image: (s.segment(i), sync(s.device)), repeats)
                rows.append((f"Mask R-CNN {variant}", f"{width}x{height}",
                             str(inference_size), *seconds,
                             f"{proposals} proposals, nobody detected"))
                print(f"  Mask R-CNN {variant} {width}x{height} @ {inference_size}: "
                      f"{seconds[0]:.2f} s", file=sys.stderr, flush=True)
        # The mask head and pasting, per detected person: 100 detections minus none.
        width, height = sizes[-1]
        inference_size = inference_sizes[-1]
        image = (synthetic(width, height)[0] * 255).astype(np.uint8)
        crowd = folder / f"crowd_{record.filename}"
        _random_maskrcnn(variant, crowd, everyone_is_a_person=True)
        seg = MaskRCNNSegmenter(variant=variant, weights_path=crowd, device=device,
                                inference_size=inference_size, proposals=proposals)
        count = len(seg.detect(image)[0])
        full = timed(lambda s=seg, i=image: (s.segment(i), sync(s.device)), repeats)
        base = next(r for r in rows if r[:3] == (f"Mask R-CNN {variant}", f"{width}x{height}",
                                                  str(inference_size)))
        per = [(f - b) / max(count, 1) for f, b in zip(full, base[3:5], strict=True)]
        rows.append((f"Mask R-CNN {variant}", f"{width}x{height}", str(inference_size), *per,
                     f"extra per detected person (from {count} detections)"))
        path.unlink()
        crowd.unlink()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("fba", "maskrcnn"), default=None)
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES),
                        help="WIDTHxHEIGHT ... (default: %(default)s)")
    parser.add_argument("--inference-sizes", nargs="+", type=int, default=[320, 480])
    parser.add_argument("--variants", nargs="+", choices=("v1", "v2"), default=["v1", "v2"])
    parser.add_argument("--proposals", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true", help="FBA in half precision (CUDA)")
    parser.add_argument("--max-size", type=int, default=0,
                        help="FBA max_size (default 0: always full size)")
    args = parser.parse_args(argv)
    import torch

    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "fba"):
            rows += bench_fba(sizes, args.repeats, args.device, args.half, args.max_size,
                              Path(tmp))
        if args.only in (None, "maskrcnn"):
            rows += bench_maskrcnn(args.variants, sizes, args.inference_sizes, args.repeats,
                                   args.device, args.proposals, Path(tmp))
    device = args.device
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        device = f"{device} ({torch.cuda.get_device_name(0)})"
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, device {device}. "
          f"Median of {args.repeats} calls after a warm-up, random weights.\n")
    print("| model | image | inference size | seconds per call | CPU seconds per call | note |")
    print("|---|---|---|---|---|---|")
    for model, size, inference, wall, cpu, note in rows:
        print(f"| {model} | {size} | {inference} | {wall:.2f} | {cpu:.2f} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
