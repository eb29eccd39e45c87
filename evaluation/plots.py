"""Matplotlib figures (Agg backend, PNG): per-image bars and rows of example outputs.

Figures of the data sets' own pictures (examples) stay in the results folder: those
sets are for measurement only and must not be shipped. Charts carry only numbers.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 90
MAX_BYTES = 280_000   # figures shown by the docs stay under 300 KB


def _save(fig, path: Path, tight: bool = True, max_bytes: int = MAX_BYTES) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    if path.stat().st_size > max_bytes:
        _palette_png(path)
    return path


def _palette_png(path: Path, colours: int = 256) -> None:
    """Re-save a PNG with an adaptive palette (photos in a figure: ~3x smaller)."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT,
                                            dither=Image.Dither.FLOYDSTEINBERG)
    small.save(path, optimize=True)


def matting_bars(rows: list[dict], path: Path, note: str = "") -> Path | None:
    """SAD per image, one bar per method, a panel per trimap."""
    if not rows:
        return None
    methods = list(OrderedDict.fromkeys(r["method"] for r in rows))
    trimaps = [t for t in ("trimap1", "trimap2") if any(r["trimap"] == t for r in rows)]
    fig, axes = plt.subplots(len(trimaps), 1, figsize=(10, 2.6 * len(trimaps) + 0.6), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    for ax, trimap in zip(axes[:, 0], trimaps):
        picked = [r for r in rows if r["trimap"] == trimap]
        images = list(OrderedDict.fromkeys(r["image"] for r in picked))
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            vals = [next((r["sad"] for r in picked if r["image"] == im and r["method"] == m), np.nan)
                    for im in images]
            ax.bar(np.arange(len(images)) + (i - (len(methods) - 1) / 2) * width, vals, width,
                   label=m, color=colours[i % 10])
        top = np.nanmax([r["sad"] for r in picked])
        ax.set_ylim(0, top * 1.3)             # room for the legend
        ax.set_xticks(np.arange(len(images)), images, fontsize=8)
        ax.set_ylabel("SAD (lower is better)", fontsize=8)
        ax.set_title(f"alphamatting, {trimap}", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
    axes[0, 0].legend(fontsize=7, ncol=min(len(methods), 4), loc="upper left")
    if note:
        fig.text(0.99, 0.005, note, ha="right", va="bottom", fontsize=6, color="0.4")
    return _save(fig, path)


def pipeline_scores(pipeline_rows: list[dict], seg_rows: list[dict], path: Path,
                    segmenter: str, note: str = "") -> Path | None:
    """Per-image IoU: DAVIS by frame (lines), portraits sorted (bars), mask vs alpha."""
    datasets = [d for d in ("davis", "portraits") if any(r["dataset"] == d for r in pipeline_rows)]
    if not datasets:
        return None
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 3.0), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        variants = list(OrderedDict.fromkeys(r["trimap"] for r in pipeline_rows
                                             if r["dataset"] == ds and r["segmenter"] == segmenter))
        masks = {r["image"]: r["mask_iou"] for r in seg_rows
                 if r["dataset"] == ds and r["segmenter"] == segmenter}
        if ds == "davis":
            frames = sorted(masks)
            x = [int(f) for f in frames]
            ax.plot(x, [masks[f] for f in frames], "k-", lw=1.2, label="mask > 0.5")
            for v in variants:
                alpha = {r["image"]: r["alpha_iou"] for r in pipeline_rows
                         if r["dataset"] == ds and r["segmenter"] == segmenter and r["trimap"] == v}
                ax.plot(x, [alpha.get(f, np.nan) for f in frames], lw=1, label=f"alpha, {v}")
            ax.set_xlabel("frame", fontsize=8)
        else:
            order = sorted(masks, key=masks.get)
            ax.bar(np.arange(len(order)), [masks[k] for k in order], 1.0, color="0.75",
                   label="mask > 0.5")
            for v in variants:
                alpha = {r["image"]: r["alpha_iou"] for r in pipeline_rows
                         if r["dataset"] == ds and r["segmenter"] == segmenter and r["trimap"] == v}
                ax.plot(np.arange(len(order)), [alpha.get(k, np.nan) for k in order], ".",
                        ms=3, label=f"alpha, {v}")
            ax.set_xlabel("images, sorted by mask IoU", fontsize=8)
        ax.set_ylim(max(0.0, min(0.5, ax.get_ylim()[0])), 1.0)
        ax.set_ylabel("IoU", fontsize=8)
        ax.set_title(f"{ds}: {segmenter}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="lower right")
    if note:
        fig.text(0.99, 0.005, note, ha="right", va="bottom", fontsize=6, color="0.4")
    return _save(fig, path)


def example_rows(examples: list[tuple[str, dict]], path: Path, caption: str = "",
                 width_px: int = 220) -> Path | None:
    """Rows of input | trimap | alpha | composite (each ``examples`` item: title, arrays)."""
    if not examples:
        return None
    cols = ("image", "trimap", "alpha", "composite")
    aspects = [ex["image"].shape[0] / ex["image"].shape[1] for _, ex in examples]
    w_in = width_px / DPI
    fig, axes = plt.subplots(len(examples), 4, figsize=(4 * w_in + 0.3, sum(aspects) * w_in + 0.5),
                             squeeze=False, gridspec_kw={"height_ratios": aspects})
    for row, (title, ex) in enumerate(examples):
        for col, key in enumerate(cols):
            ax = axes[row, col]
            img = ex[key]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0,
                      vmax=1 if img.dtype != np.uint8 else 255, interpolation="antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(key, fontsize=9)
            if col == 0:
                ax.set_ylabel(title, fontsize=7)
    if caption:
        fig.text(0.5, 0.003, caption, ha="center", va="bottom", fontsize=6, color="0.3")
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.25 / width, right=1 - 0.05 / width, top=1 - 0.25 / height,
                        bottom=0.2 / height, wspace=0.03, hspace=0.03)
    return _save(fig, path, tight=False)
