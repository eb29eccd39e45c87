"""Run every evaluation stage, write the report, check the floors.

Stages: ``matting`` (alphamatting, trimap given), ``segmentation`` (raw masks),
``pipeline`` (both services, alpha), ``speed`` (:mod:`evaluation.speed`).
Quick mode scores a fixed handful of images with our backends only (CI: a few minutes on
two cores); full mode scores everything, adds pymatting's other solvers as references,
more trimap bands and the speed benchmark.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from evaluation import datasets, environment, plots, report
from evaluation.matting_eval import (
    REFERENCES,
    ReferenceCache,
    backend_methods,
    evaluate_matting,
    reference_methods,
)
from evaluation.segmentation_eval import (
    evaluate_pipeline,
    evaluate_segmenters,
    fetch_example,
    pipeline_backends,
)

log = logging.getLogger(__name__)

STAGES = ("matting", "segmentation", "pipeline", "speed")
REPO_ROOT = environment.REPO_ROOT
DOCS = REPO_ROOT / "docs"
VIDEO_EXAMPLES = (("one-by-one-person-detection.mp4", 150), ("one-by-one-person-detection.mp4", 650),
                  ("asl_again.mkv", 40))
VIDEO_CREDIT = ("Frames: Intel IoT sample videos (one-by-one-person-detection, asl_again), "
                "CC BY 4.0")


@dataclass
class Options:
    mode: str = "quick"                        # "quick" or "full"
    out: Path = Path("results")
    data: Path = field(default_factory=datasets.default_data_dir)
    stages: tuple = ("matting", "segmentation", "pipeline")
    limit: int = 0                             # at most this many images per data set
    references: tuple = ()                     # pymatting solvers
    band_scales: tuple = (0.05,)
    use_cache: bool = True
    publish: bool = False                      # write docs/*.md and docs/img/*.png
    command: str = "python -m evaluation"

    @classmethod
    def for_mode(cls, mode: str, **overrides) -> "Options":
        if mode == "full":
            base = dict(stages=STAGES, references=REFERENCES, band_scales=(0.05, 0.1))
        elif mode == "quick":
            base = {}
        else:
            raise ValueError(f"mode must be 'quick' or 'full', got {mode!r}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(mode=mode, **base)


def _subset(samples, limit):
    return samples[:limit] if limit else samples


def run(opts: Options, progress=print) -> int:
    """Run the selected stages; returns the exit status (1 when a floor is not met)."""
    present = datasets.available(opts.data)
    if not any(present.values()):
        progress(f"evaluation data not found in {opts.data} (set --data or EVAL_DATA); "
                 f"nothing to evaluate")
        return 0 if opts.mode == "quick" else 2
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    info = environment.describe()
    quick = opts.mode == "quick"
    results = {"mode": opts.mode, "data_dir": str(opts.data), "machine": info,
               "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in opts.__dict__.items()}}
    if opts.limit:
        results["subset_note"] = f"at most {opts.limit} images per data set (--limit): floors not checked"
    elif quick:
        results["subset_note"] = ("quick subset: alphamatting " + ", ".join(datasets.QUICK_ALPHAMATTING)
                                  + f"; DAVIS every {datasets.QUICK_DAVIS_STEP}th frame; "
                                  f"{datasets.QUICK_PORTRAITS_COUNT} evenly spaced portraits")
    progress(f"evaluation, {opts.mode} mode: stages {', '.join(opts.stages)}; data {opts.data}; "
             f"load average {info['load_at_start']} on {info['cores']} cores")
    started = time.perf_counter()
    images, video_examples = [], []
    stages_run = set()

    if "matting" in opts.stages and present["alphamatting"]:
        stages_run.add("matting")
        samples = _subset(datasets.alphamatting(opts.data, quick), opts.limit)
        methods, skipped = backend_methods(extra=not quick)
        if opts.references:
            methods += reference_methods(opts.references)
        progress(f"matting: {len(samples)} images x 2 trimaps x {len(methods)} methods"
                 + (f" (not available: {', '.join(skipped)})" if skipped else ""))
        cache = ReferenceCache(out / "cache" if opts.use_cache else None)
        results["matting"], _ = evaluate_matting(samples, methods, cache, progress)
        results["matting_skipped"] = skipped

    person_sets = []
    if present["davis"]:
        person_sets += _subset(datasets.davis(opts.data, quick), opts.limit)
    if present["portraits"]:
        person_sets += _subset(datasets.portraits(opts.data, quick), opts.limit)

    if "segmentation" in opts.stages and person_sets:
        stages_run.add("segmentation")
        progress(f"segmentation: {len(person_sets)} images")
        results["segmentation"], results["segmentation_skipped"] = \
            evaluate_segmenters(person_sets, progress)

    examples = {}
    if "pipeline" in opts.stages and person_sets:
        stages_run.add("pipeline")
        from evaluation.services import running_services

        names, skipped = pipeline_backends()
        results["pipeline"], results["pipeline_skipped"] = [], skipped
        wanted = _example_names(person_sets)
        for name in names:
            progress(f"pipeline: starting the services with segmentation backend {name!r}")
            with running_services(segmentation_args=["--backend", name], log_dir=out) as urls:
                rows, ex = evaluate_pipeline(person_sets, urls, name, opts.band_scales, progress,
                                             wanted if name == names[0] else None)
                results["pipeline"] += rows
                examples.update(ex)
                if opts.publish and name == names[0]:
                    video_examples = _video_examples(urls, opts.data)
        if examples:
            images.append(plots.example_rows(
                [(f"{ds}/{n}", examples[(ds, n)]) for ds, n in sorted(examples)],
                out / "examples_datasets.png",
                "measurement data: research use only, not for publication"))

    if "speed" in opts.stages:
        stages_run.add("speed")
        from evaluation import speed

        progress("speed: evaluation/speed.py")
        results["speed"] = speed.run(out, opts.data, progress=progress)

    info["load_at_end"] = environment.load_average()
    results["elapsed_s"] = time.perf_counter() - started
    figs = report.figures(results)
    floors = {} if opts.limit else report.load_floors(opts.mode)
    checks = report.check_floors(figs, floors, stages_run)
    results["floors"] = checks

    note = f"{info['cores']}-core CPU, {opts.mode} mode, {info['date'][:10]}"
    chart_dir = DOCS / "img" if opts.publish else out
    chart_paths = [plots.matting_bars(results.get("matting", []), chart_dir / "eval_matting_sad.png",
                                      note) if results.get("matting") else None]
    for name in dict.fromkeys(r["segmenter"] for r in results.get("pipeline", [])):
        chart_paths.append(plots.pipeline_scores(results["pipeline"], results.get("segmentation", []),
                                                 chart_dir / f"eval_pipeline_iou_{name}.png", name, note))
    if video_examples:
        chart_paths.append(plots.example_rows(video_examples, DOCS / "img" / "eval_examples.png",
                                              VIDEO_CREDIT))
    images = [p for p in chart_paths + images if p is not None]

    env_md = environment.markdown(info, opts.command)
    rel = [_relative(p, out) for p in images]
    md = report.evaluation_markdown(results, env_md, checks, rel)
    (out / "evaluation.md").write_text(md)
    (out / "evaluation.json").write_text(json.dumps(results, indent=1, default=_json_default))
    (out / "figures.json").write_text(json.dumps(figs, indent=1))
    (out / "floors_suggested.json").write_text(json.dumps(report.suggest_floors(figs), indent=1))
    if opts.publish:
        # The page's hand-written part shows the charts with captions (docs/img/). A run of
        # the speed stage alone rewrites only benchmarks.md.
        if stages_run & {"matting", "segmentation", "pipeline"}:
            report.publish(DOCS / "evaluation.md", "Evaluation",
                           report.evaluation_markdown(results, env_md, checks, []))
        if "speed" in results:
            from evaluation import speed

            figures = results["speed"]
            speed.plot(figures, DOCS / "img" / "bench_stages.png")
            report.publish(DOCS / "benchmarks.md", "Benchmarks",
                           "## Pipeline speed\n\n" + environment.markdown(figures["machine"], opts.command)
                           + "\n\n![per-stage latency](img/bench_stages.png)\n\n"
                           + speed.markdown(figures))
    progress(f"\nwrote {out / 'evaluation.md'} ({results['elapsed_s']:.0f} s)")
    progress(report.floors_table(checks))
    if report.floors_failed(checks):
        progress("quality floor(s) not met: see the table above")
        return 1
    return 0


def _example_names(samples) -> set:
    """Two images per data set for the example figure (first and middle of the list)."""
    wanted = set()
    for ds in ("davis", "portraits"):
        names = [s.name for s in samples if s.dataset == ds]
        if names:
            wanted |= {(ds, names[0]), (ds, names[len(names) // 2])}
    return wanted


def _video_examples(urls, data_dir: Path) -> list:
    """Frames of the CC BY 4.0 videos through the services (these may be published)."""
    import requests

    from core.images import encode_image

    session, rows = requests.Session(), []
    for filename, index in VIDEO_EXAMPLES:
        path = Path(data_dir) / "video" / filename
        capture = cv2.VideoCapture(str(path))
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        capture.release()
        if not ok:
            continue
        image = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        data = encode_image(image, "png")
        from evaluation.segmentation_eval import matte_npy, post_matte

        alpha = matte_npy(post_matte(session, urls.matting, data, "frame.png",
                                {"output": "alpha", "format": "npy"})[0])
        rows.append((f"{Path(filename).stem.split('-')[0]} #{index}",
                     fetch_example(session, urls.matting, data, "frame.png", alpha, image)))
    return rows


def _relative(path, base: Path) -> str:
    path, base = Path(path).resolve(), Path(base).resolve()
    try:
        return str(path.relative_to(base))
    except ValueError:
        import os
        return os.path.relpath(path, base)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)
