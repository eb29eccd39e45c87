"""Tables, headline figures and quality floors from the evaluation's rows.

A *figure* is one named number, e.g. ``matting.trimap1.closed-form (default).sad`` or
``pipeline.portraits.mediapipe.fixed (10 iterations).alpha_iou``. ``floors.json`` holds,
per mode, a floor for some of them: ``{"min": x}`` for scores (IoU, F) and ``{"max": x}``
for errors (SAD, MSE, gradient). A figure that drops below its floor fails the run.
"""
from __future__ import annotations

import json
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np

FLOORS_PATH = Path(__file__).with_name("floors.json")
BEGIN, END = "<!-- BEGIN GENERATED: python -m evaluation -->", "<!-- END GENERATED -->"


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def _group(rows, *keys):
    groups: dict = OrderedDict()
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return groups


def figures(results: dict) -> dict[str, float]:
    """Flat ``{name: mean}`` of every headline figure in ``results``."""
    out = {}
    for (trimap, method), rows in _group(results.get("matting", []), "trimap", "method").items():
        for k in ("sad", "mse", "grad"):
            out[f"matting.{trimap}.{method}.{k}"] = _mean(rows, k)
    for (ds, seg), rows in _group(results.get("segmentation", []), "dataset", "segmenter").items():
        for k in ("mask_iou", "mask_bf"):
            out[f"segmentation.{ds}.{seg}.{k}"] = _mean(rows, k)
    for (ds, seg, tri), rows in _group(results.get("pipeline", []), "dataset", "segmenter",
                                       "trimap").items():
        for k in ("alpha_iou", "alpha_bf"):
            out[f"pipeline.{ds}.{seg}.{tri}.{k}"] = _mean(rows, k)
    return out


def load_floors(mode: str, path: Path = FLOORS_PATH) -> dict:
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get(mode, {})


def check_floors(figs: dict, floors: dict, stages_run: set) -> list[dict]:
    """One row per floor: figure, value, floor, status (``ok``, ``FAIL``, ``missing``, ``not run``).

    A floored figure whose stage ran but which is absent (a renamed backend, a data set
    gone) is ``missing`` and fails the run too: floors must follow renames.
    """
    checks = []
    for name, bound in floors.items():
        if name.startswith("_"):
            continue
        stage = name.split(".", 1)[0]
        value = figs.get(name)
        if value is None:
            status = "missing" if stage in stages_run else "not run"
        elif "min" in bound:
            status = "ok" if value >= bound["min"] else "FAIL"
        else:
            status = "ok" if value <= bound["max"] else "FAIL"
        checks.append({"figure": name, "value": value, "status": status,
                       "floor": (">= " + f"{bound['min']:g}") if "min" in bound
                       else ("<= " + f"{bound['max']:g}")})
    return checks


def floors_failed(checks: list[dict]) -> bool:
    return any(c["status"] in ("FAIL", "missing") for c in checks)


def suggest_floors(figs: dict, margin: float = 0.02, factor: float = 1.1) -> dict:
    """Floors a little below the measured figures: scores - ``margin``, errors x ``factor``
    (rounded away from the measured value). Written to ``OUT/floors_suggested.json``."""
    out = {}
    for name, value in figs.items():
        if value != value:
            continue
        if name.endswith(("_iou", "_bf")):
            out[name] = {"min": float(np.floor(max(value - margin, 0.0) * 1000) / 1000)}
        else:
            out[name] = {"max": float(np.ceil(value * factor * 100) / 100)}
    return out


# --- Markdown --------------------------------------------------------------------------

def _f(x, digits=2):
    return "–" if x is None or x != x else f"{x:.{digits}f}"


def matting_tables(rows: list[dict], skipped: dict) -> str:
    if not rows:
        return "_Matting stage not run (alphamatting data absent or stage not selected)._\n"
    out = ["Mean over the images, errors over each trimap's unknown pixels: SAD = sum |a - a*| "
           "/ 1000, MSE x 1000, Grad = sum (|grad a| - |grad a*|)^2 / 1000 (the literature's "
           "`gaussgradient`, sigma 1.4); lower is better. *s/image* is the solve time "
           "(backends: alpha and foreground, as the service runs them; references: alpha only).\n"]
    methods = list(OrderedDict.fromkeys(r["method"] for r in rows))
    kinds = {r["method"]: r["kind"] for r in rows}
    for trimap in ("trimap1", "trimap2"):
        picked = [r for r in rows if r["trimap"] == trimap]
        if not picked:
            continue
        n = len({r["image"] for r in picked})
        out.append(f"**{trimap}** ({'tight' if trimap == 'trimap1' else 'loose'} band, {n} images)\n")
        out.append("| method | kind | SAD | MSE | Grad | s/image |")
        out.append("|---|---|---:|---:|---:|---:|")
        for m in methods:
            mr = [r for r in picked if r["method"] == m]
            cached = " (cached)" if mr and all(r["cached"] for r in mr) else ""
            out.append(f"| {m} | {kinds[m]} | {_f(_mean(mr, 'sad'))} | {_f(_mean(mr, 'mse'))} | "
                       f"{_f(_mean(mr, 'grad'))} | {_f(_mean(mr, 'seconds'))}{cached} |")
        out.append("")
    out.append("Per image, SAD:\n")
    for trimap in ("trimap1", "trimap2"):
        picked = [r for r in rows if r["trimap"] == trimap]
        if not picked:
            continue
        images = list(OrderedDict.fromkeys(r["image"] for r in picked))
        out.append(f"| {trimap} | unknown px | " + " | ".join(methods) + " |")
        out.append("|---|---:|" + "---:|" * len(methods))
        for im in images:
            ir = {r["method"]: r for r in picked if r["image"] == im}
            unknown = next(iter(ir.values()))["unknown"]
            best = min(ir[m]["sad"] for m in methods if m in ir)
            cells = []
            for m in methods:
                v = ir[m]["sad"] if m in ir else None
                cells.append(f"**{_f(v)}**" if v is not None and v == best else _f(v))
            out.append(f"| {im} | {unknown:,} | " + " | ".join(cells) + " |")
        out.append("")
    out.append("Lowest SAD per image in bold.\n")
    out.append(_skipped(skipped, "Matting backends not run here"))
    return "\n".join(out)


def _skipped(skipped: dict, title: str) -> str:
    if not skipped:
        return ""
    return f"{title}:\n\n" + "\n".join(f"- `{k}`: {v}" for k, v in skipped.items()) + "\n"


def segmentation_table(rows: list[dict], skipped: dict) -> str:
    if not rows:
        return "_Segmentation stage not run._\n"
    out = ["Raw person mask of each segmenter, `mask > 0.5`, against the true mask. IoU; BF = "
           "F-score of the mask contours, a contour pixel matching within 3 px. "
           "*ms/image*: the segmenter's own time in this process.\n",
           "| data set | segmenter | images | IoU | BF | ms/image |", "|---|---|---:|---:|---:|---:|"]
    for (ds, seg), rs in _group(rows, "dataset", "segmenter").items():
        out.append(f"| {ds} | {seg} | {len(rs)} | {_f(_mean(rs, 'mask_iou'), 3)} | "
                   f"{_f(_mean(rs, 'mask_bf'), 3)} | {_mean(rs, 'seconds') * 1000:.0f} |")
    out.append("")
    out.append(_skipped(skipped, "Segmenters not run here"))
    return "\n".join(out)


def pipeline_table(rows: list[dict], seg_rows: list[dict], skipped: dict) -> str:
    if not rows:
        return "_Pipeline stage not run._\n"
    out = ["Both services as real processes (default matting backend), each image posted as "
           "its file to `POST /matte?output=alpha&format=npy`; `alpha > 0.5` against the true "
           "mask. *mask IoU* repeats the raw mask's score for comparison. *s/image*: client "
           "wall clock per request (includes the services' JPEG decode, etc.).\n",
           "| data set | segmentation | trimap | images | mask IoU | alpha IoU | mask BF | "
           "alpha BF | s/image |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for (ds, seg, tri), rs in _group(rows, "dataset", "segmenter", "trimap").items():
        ms = [r for r in seg_rows if r["dataset"] == ds and r["segmenter"] == seg]
        out.append(f"| {ds} | {seg} | {tri} | {len(rs)} | {_f(_mean(ms, 'mask_iou'), 3)} | "
                   f"{_f(_mean(rs, 'alpha_iou'), 3)} | {_f(_mean(ms, 'mask_bf'), 3)} | "
                   f"{_f(_mean(rs, 'alpha_bf'), 3)} | {_f(_mean(rs, 'wall_s'))} |")
    out.append("")
    missed = [r for r in rows if not r["person_found"]]
    if missed:
        out.append(f"No person found in {len({(r['dataset'], r['image']) for r in missed})} "
                   "image(s): " + ", ".join(sorted({f"{r['dataset']}/{r['image']}" for r in missed}))
                   + " (alpha all 0, IoU 0).\n")
    out.append(_skipped(skipped, "Segmentation backends the services could not start with here"))
    return "\n".join(out)


def floors_table(checks: list[dict]) -> str:
    if not checks:
        return "_No floors for this mode._\n"
    out = ["| figure | value | floor | status |", "|---|---:|---:|---|"]
    for c in checks:
        status = c["status"] if c["status"] in ("ok", "not run") else f"**{c['status']}**"
        out.append(f"| `{c['figure']}` | {_f(c['value'], 3)} | {c['floor']} | {status} |")
    return "\n".join(out) + "\n"


def evaluation_markdown(results: dict, env_md: str, checks: list[dict], images: list[str]) -> str:
    mode = results["mode"]
    parts = [f"## Evaluation, {mode} mode\n", env_md, "",
             f"- Data: `{results['data_dir']}`" + (f"; {results['subset_note']}"
                                                     if results.get("subset_note") else ""),
             "", "### Matting stage (alphamatting, trimap given)\n",
             matting_tables(results.get("matting", []), results.get("matting_skipped", {})),
             "### Person segmentation (DAVIS dance-twirl, portraits)\n",
             segmentation_table(results.get("segmentation", []),
                                results.get("segmentation_skipped", {})),
             "### Whole pipeline through the services\n",
             pipeline_table(results.get("pipeline", []), results.get("segmentation", []),
                            results.get("pipeline_skipped", {})),
             f"### Quality floors (`evaluation/floors.json`, {mode})\n",
             floors_table(checks)]
    if images:
        parts.append("### Figures\n")
        parts += [f"![{Path(p).stem}]({p})\n" for p in images]
    return "\n".join(parts)


def publish(path: Path, title: str, generated: str) -> None:
    """Write ``generated`` between the markers of ``path`` (created with ``title`` if new),
    keeping the hand-written text around them."""
    block = f"{BEGIN}\n{generated.rstrip()}\n{END}"
    if path.is_file():
        text = path.read_text()
        if BEGIN in text and END in text:
            text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text,
                          flags=re.S)
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        text = f"# {title}\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
