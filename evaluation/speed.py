"""Speed of the whole service pipeline: per-stage latency, throughput, memory, wire format.

    python benchmarks/bench_pipeline.py [--out results/] [--reps 5]
    (or python -m evaluation --stages speed, which also publishes docs/benchmarks.md)

Starts both services as real processes on free loopback ports (default backends) and
measures, for a real 1280x720 photo resized to 360x240 / 1280x720 / 1920x1080:

- per-stage latency of ``POST /matte`` (binary API) from the ``Server-Timing`` headers of
  the matting service (decode, segmentation, transport, matting, composite, encode) and
  of the segmentation service (its decode, segmentation, trimap, encode), plus the client's
  wall clock; end to end of the JSON compatibility API (``POST /`` with nested lists);
- the matting -> segmentation hop with the original's JSON-list wire format (``POST /``
  of segmentation) against ours (image bytes up, trimap PNG down), in the same run;
- throughput with N concurrent clients (bounded loops, loopback only);
- peak resident memory (``VmHWM``) of each service's largest process (gunicorn workers);
- with ``--profile``: where the matting service's time goes (cProfile, in process).

Writes ``benchmarks.md`` and ``benchmarks.json`` (and a stage plot) under ``--out``.
Figures depend on the machine and its load: the report states both.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import requests

from core.compositing import fit_image
from core.images import read_image_file
from evaluation import environment
from evaluation.datasets import default_data_dir
from evaluation.services import running_services
from service_common.timing import parse_server_timing

SIZES = ((360, 240), (1280, 720), (1920, 1080))
PHOTO = Path("portraits") / "images" / "83.jpg"   # a 1280x720 photo: one person, upper body
MATTING_STAGES = ("decode", "segmentation", "transport", "matting", "composite", "encode")
TARGET_E2E_S = 1.0
TARGET_TRANSPORT_SHARE = 0.03
TARGET_WIRE_RATIO = 50.0


def jpeg_bytes(image: np.ndarray, quality: int = 92) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def load_photo(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"benchmark photo {path} is missing (pass --image or --data)")
    return read_image_file(path)


def photos(base: np.ndarray, sizes=SIZES) -> dict[str, tuple[np.ndarray, bytes]]:
    """``{"1280x720": (uint8 RGB, JPEG bytes)}``: ``base`` fitted (cover) to each size."""
    out = {}
    for w, h in sizes:
        image = fit_image(base, (h, w), "cover")
        out[f"{w}x{h}"] = (image, jpeg_bytes(image))
    return out


def median(values) -> float:
    return float(statistics.median(values)) if values else float("nan")


def peak_rss_mib(pid: int) -> dict:
    """Peak and current resident memory of a service: the largest ``VmHWM`` and ``VmRSS``
    (``/proc/PID/status``) among the process and its children (the production server's
    workers, each of which holds its own models and requests), and how many there are."""
    import psutil

    try:
        root = psutil.Process(pid)
        pids = [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        pids = [pid]
    peaks, rss = [], []
    for each in pids:
        fields = {}
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith(("VmHWM", "VmRSS")):
                    fields[line.split(":")[0]] = int(line.split()[1]) / 1024.0
        except OSError:
            continue
        peaks.append(fields.get("VmHWM", float("nan")))
        rss.append(fields.get("VmRSS", float("nan")))
    return {"peak_mib": max(peaks, default=float("nan")),
            "rss_mib": max(rss, default=float("nan")), "processes": len(peaks)}


# --- binary API ------------------------------------------------------------------------

def time_binary(session, urls, data: bytes, reps: int) -> dict:
    """Median stage durations (ms) of ``POST /matte`` and of segmentation's ``/trimap``."""
    walls, stages = [], {}
    for _ in range(reps):
        started = time.perf_counter()
        response = session.post(urls.matting + "/matte", files={"image": ("photo.jpg", data)},
                                timeout=600)
        wall = (time.perf_counter() - started) * 1000.0
        if response.status_code != 200:
            raise RuntimeError(f"/matte answered {response.status_code}: {response.text[:200]}")
        walls.append(wall)
        for name, ms in parse_server_timing(response.headers.get("Server-Timing", "")).items():
            stages.setdefault(name, []).append(ms)
    seg_stages, seg_walls = {}, []
    for _ in range(reps):
        started = time.perf_counter()
        response = session.post(urls.segmentation + "/trimap", data=data,
                                headers={"Content-Type": "application/octet-stream"}, timeout=600)
        seg_walls.append((time.perf_counter() - started) * 1000.0)
        for name, ms in parse_server_timing(response.headers.get("Server-Timing", "")).items():
            seg_stages.setdefault(name, []).append(ms)
    out = {"wall_ms": median(walls), "wall_min_ms": min(walls), "wall_all_ms": walls,
           "stages_ms": {k: median(v) for k, v in stages.items()},
           "segmentation_stages_ms": {k: median(v) for k, v in seg_stages.items()},
           "segmentation_wall_ms": median(seg_walls), "upload_bytes": len(data)}
    out["server_ms"] = sum(out["stages_ms"].values())
    out["client_overhead_ms"] = out["wall_ms"] - out["server_ms"]
    return out


# --- JSON compatibility API and the original wire format -------------------------------

def json_roundtrip(session, url: str, payload_image: np.ndarray, key: str) -> tuple[float, np.ndarray]:
    """What the original client did: ``tolist`` -> JSON POST -> parse -> ``np.array``."""
    started = time.perf_counter()
    response = session.post(url, json={"image": payload_image.tolist()}, timeout=600)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    result = np.array(response.json()[key])
    return (time.perf_counter() - started) * 1000.0, result


def time_json_api(session, urls, image: np.ndarray, reps: int) -> dict:
    walls = [json_roundtrip(session, urls.matting + "/", image, "output")[0] for _ in range(reps)]
    return {"wall_ms": median(walls), "wall_all_ms": walls}


def time_wire(session, urls, image: np.ndarray, data: bytes, reps: int) -> dict:
    """The matting -> segmentation hop, original JSON lists against our bytes.

    Wire cost = round trip - (segment + trimap) as the segmentation service reports them
    for the same image in the same run, so it counts serialising, sending, parsing and
    (for ours) decoding the JPEG and encoding / decoding the trimap PNG. The service's own
    ``transport`` stage is narrower (round trip - all the server's stages).
    """
    from core.images import decode_image

    ours_rt, ours_compute, ours_transport = [], [], []
    for _ in range(reps):
        started = time.perf_counter()
        response = session.post(urls.segmentation + "/trimap", data=data,
                                headers={"Content-Type": "application/octet-stream"},
                                params={"format": "png"}, timeout=600)
        rt_before_decode = (time.perf_counter() - started) * 1000.0
        decode_image(response.content)
        ours_rt.append((time.perf_counter() - started) * 1000.0)
        stages = parse_server_timing(response.headers.get("Server-Timing", ""))
        ours_compute.append(stages.get("segmentation", 0.0) + stages.get("trimap", 0.0))
        ours_transport.append(rt_before_decode - sum(stages.values()))
    json_rt = [json_roundtrip(session, urls.segmentation + "/", image, "trimap")[0]
               for _ in range(reps)]
    compute = median(ours_compute)
    ours = median(ours_rt) - compute
    original = median(json_rt) - compute
    return {"ours_wire_ms": ours, "ours_transport_ms": median(ours_transport),
            "original_wire_ms": original, "compute_ms": compute,
            "ratio": original / ours if ours > 0 else float("inf"),
            "ours_upload_bytes": len(data),
            "original_upload_bytes": len(json.dumps({"image": image.tolist()}))}


# --- throughput ------------------------------------------------------------------------

def throughput(urls, data: bytes, clients: int, per_client: int) -> dict:
    """``clients`` threads each posting ``per_client`` requests; requests per second."""
    def worker(_):
        session, latencies = requests.Session(), []
        for _ in range(per_client):
            started = time.perf_counter()
            response = session.post(urls.matting + "/matte",
                                    files={"image": ("photo.jpg", data)}, timeout=600)
            if response.status_code != 200:
                raise RuntimeError(f"/matte answered {response.status_code}")
            latencies.append(time.perf_counter() - started)
        return latencies

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        latencies = [x for batch in pool.map(worker, range(clients)) for x in batch]
    elapsed = time.perf_counter() - started
    return {"clients": clients, "requests": len(latencies), "elapsed_s": elapsed,
            "requests_per_s": len(latencies) / elapsed,
            "latency_p50_s": median(latencies), "latency_max_s": max(latencies)}


# --- in-process profile ----------------------------------------------------------------

def profile_matting(image: np.ndarray, top: int = 18) -> dict:
    """cProfile of segment -> trimap -> matte -> composite in this process (default backends)."""
    from core.pipeline import Pipeline, render

    pipeline = Pipeline.in_process()
    with contextlib.redirect_stdout(io.StringIO()):       # pymatting prints warnings
        render(pipeline.run(image))                     # warm up JIT and graphs
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        render(pipeline.run(image))
        profiler.disable()
    total = time.perf_counter() - started
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(top)
    lines = [ln for ln in stream.getvalue().splitlines() if ln.strip()]
    return {"total_s": total, "backends": pipeline.describe(),
            "cumulative": "\n".join(lines)}


def matting_options(image: np.ndarray, reps: int = 2) -> list[dict]:
    """In process, on one photo: matting time and unknown-band size for a few settings
    (what would bring the 720p end to end under 1 s, and at what cost in the matte).

    ``mean_abs_diff`` is the mean |alpha - alpha_default| over the default trimap's band:
    how far a faster setting moves the matte from today's default (not an error against
    truth: the alphamatting table measures that for ``max_unknown``).
    """
    from core.matters import MATTERS, create_matter
    from core.pipeline import matte_with_trimap
    from core.segmenters import create_segmenter
    from core.trimap import TrimapParams, mask_to_trimap

    mask = create_segmenter("auto").segment(image)
    default_trimap = mask_to_trimap(mask, TrimapParams())
    band = default_trimap == 128
    settings = [("closed-form (default)", "closed-form", {}, TrimapParams())]
    settings += [(f"closed-form, max_unknown={n // 1000}k", "closed-form", {"max_unknown": n},
                  TrimapParams()) for n in (25_000, 12_000)]
    settings += [("closed-form, tolerance=1e-4", "closed-form", {"tolerance": 1e-4}, TrimapParams())]
    settings += [("closed-form, tolerance=1e-4, max_unknown=25k", "closed-form",
                  {"tolerance": 1e-4, "max_unknown": 25_000}, TrimapParams())]
    settings += [(f"closed-form (default), trimap band_scale={s:g}", "closed-form", {},
                  TrimapParams.soft(band_scale=s)) for s in (0.05, 0.1)]
    if "guided-filter" in MATTERS:
        settings += [("guided-filter", "guided-filter", {}, TrimapParams())]
    rows, reference = [], None
    for label, name, options, params in settings:
        matter = create_matter(name, **options)
        trimap = default_trimap if params == TrimapParams() else mask_to_trimap(mask, params)
        def with_trimap(trimap=trimap, matter=matter):
            with contextlib.redirect_stdout(io.StringIO()):   # pymatting prints warnings
                # the soft mask goes along as a prior, as the matting service passes it
                return matte_with_trimap(image, trimap, matter, mask)

        with_trimap()                                       # warm-up (JIT)
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            result = with_trimap()
            times.append(time.perf_counter() - started)
        if reference is None:
            reference = result.alpha
        rows.append({"setting": label, "unknown_px": int(np.count_nonzero(trimap == 128)),
                     "matting_ms": median(times) * 1000.0,
                     "mean_abs_diff": float(np.mean(np.abs(result.alpha - reference)[band]))})
    return rows


# --- report ----------------------------------------------------------------------------

def _fmt(ms: float) -> str:
    return "–" if ms != ms else (f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}")


def markdown(results: dict) -> str:
    out = []
    sizes = list(results["binary"])
    stage_names = [s for s in MATTING_STAGES if any(s in results["binary"][k]["stages_ms"]
                                                   for k in sizes)]
    extra = sorted({s for k in sizes for s in results["binary"][k]["stages_ms"]} - set(stage_names))
    stage_names += extra
    out.append("### Per-stage latency, binary API (`POST /matte`, JPEG in, PNG composite out)\n")
    out.append(f"Median of {results['reps']} requests after one warm-up, milliseconds. Stages "
               "from the matting service's `Server-Timing`; *client* = the median wall clock "
               "minus the sum of the stages' medians (HTTP to the matting service, multipart "
               "parsing; a difference of medians, so it can round to 0). *fastest*: the "
               "quickest request, closest to what an idle machine does.\n")
    out.append("| size | " + " | ".join(stage_names) + " | client | **end to end** | fastest of "
               f"{results['reps']} | transport share |")
    out.append("|---|" + "---:|" * (len(stage_names) + 4))
    for k in sizes:
        b = results["binary"][k]
        share = b["stages_ms"].get("transport", float("nan")) / b["wall_ms"]
        out.append(f"| {k} | " + " | ".join(_fmt(b["stages_ms"].get(s, float("nan")))
                                            for s in stage_names)
                   + f" | {_fmt(b['client_overhead_ms'])} | **{_fmt(b['wall_ms'])}** | "
                   f"{_fmt(b.get('wall_min_ms', float('nan')))} | {share * 100:.2f}% |")
    seen = {s for k in sizes for s in results["binary"][k]["segmentation_stages_ms"]}
    known = ["decode", "segmentation", "trimap", "encode"]
    seg_names = [s for s in known if s in seen] + sorted(seen - set(known))
    out.append("\nInside the segmentation service (`POST /trimap` called directly, its "
               "`Server-Timing`), milliseconds:\n")
    out.append("| size | " + " | ".join(seg_names) + " | client wall |")
    out.append("|---|" + "---:|" * (len(seg_names) + 1))
    for k in sizes:
        b = results["binary"][k]
        out.append(f"| {k} | " + " | ".join(_fmt(b["segmentation_stages_ms"].get(s, float("nan")))
                                            for s in seg_names)
                   + f" | {_fmt(b['segmentation_wall_ms'])} |")
    out.append("\n### End to end: binary API against the JSON compatibility API\n")
    out.append("Client wall clock, median, milliseconds. The JSON API's figure includes the "
               "client's `tolist()` / `json.dumps` and parsing the nested-list reply, as the "
               "original's clients did.\n")
    out.append("| size | binary `POST /matte` | JSON `POST /` | JSON / binary |")
    out.append("|---|---:|---:|---:|")
    for k in sizes:
        b, j = results["binary"][k]["wall_ms"], results["json_api"].get(k, {}).get("wall_ms", float("nan"))
        out.append(f"| {k} | {_fmt(b)} | {_fmt(j)} | {j / b:.1f}x |")
    out.append("\n### The matting -> segmentation hop: original JSON lists against our bytes\n")
    out.append("Wire cost = round trip - (segment + trimap) reported by the segmentation "
               "service for the same image in the same run: serialising, sending, parsing; for "
               "ours also decoding the JPEG there and the trimap PNG here. *transport* is the "
               "service's own narrower stage (round trip - all server stages).\n")
    out.append("| size | upload, ours | upload, JSON | wire ms, ours | transport ms, ours | "
               "wire ms, JSON | **JSON / ours** |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for k, w in results["wire"].items():
        out.append(f"| {k} | {w['ours_upload_bytes'] / 1e3:.0f} kB | "
                   f"{w['original_upload_bytes'] / 1e6:.1f} MB | {_fmt(w['ours_wire_ms'])} | "
                   f"{_fmt(w['ours_transport_ms'])} | {_fmt(w['original_wire_ms'])} | "
                   f"**{w['ratio']:.0f}x** |")
    if results.get("throughput"):
        size = results["throughput_size"]
        out.append(f"\n### Throughput at {size}, N concurrent clients (loopback)\n")
        out.append("| clients | requests | requests/s | latency p50 s | latency max s |")
        out.append("|---:|---:|---:|---:|---:|")
        for t in results["throughput"]:
            out.append(f"| {t['clients']} | {t['requests']} | {t['requests_per_s']:.2f} | "
                       f"{t['latency_p50_s']:.2f} | {t['latency_max_s']:.2f} |")
    out.append("\n### Peak memory of the service processes\n")
    out.append("Peak resident set (`VmHWM`) of the service's largest process (each gunicorn "
               "worker holds its own models and requests) after the binary API requests at all "
               "sizes, and after everything (the JSON API at 1080p parses a 32 MB body into "
               "Python lists).\n")
    out.append("| service | peak MiB, binary API | peak MiB, after all | RSS at end MiB |")
    out.append("|---|---:|---:|---:|")
    for name, m in results["memory"].items():
        b = results.get("memory_binary_api", {}).get(name, {}).get("peak_mib", float("nan"))
        out.append(f"| {name} | {b:.0f} | {m['peak_mib']:.0f} | {m['rss_mib']:.0f} |")
    out.append("\n### Issue 2 targets\n")
    out.append("| target | measured | met |")
    out.append("|---|---|---|")
    for t in results["targets"]:
        out.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    if results.get("matting_options"):
        out.append(f"\n### Matting settings at {results['profile_size']}, in process\n")
        out.append("Same photo, mask (passed as the prior, as the service does) and default trimap; "
                   "median of 2 solves after a warm-up. "
                   "*mean abs diff*: mean |alpha - alpha of the default| over the default "
                   "trimap's band (how far the setting moves the matte, not an error).\n")
        out.append("| setting | unknown px | matting ms | mean abs diff |")
        out.append("|---|---:|---:|---:|")
        for r in results["matting_options"]:
            out.append(f"| {r['setting']} | {r['unknown_px']:,} | {r['matting_ms']:.0f} | "
                       f"{r['mean_abs_diff']:.3f} |")
    if results.get("profile"):
        p = results["profile"]
        out.append(f"\n### Profile of one {results['profile_size']} photo in process "
                   f"({p['total_s']:.2f} s; backends {p['backends']})\n")
        out.append("```\n" + p["cumulative"] + "\n```")
    return "\n".join(out) + "\n"


def targets(results: dict, key: str = "1280x720") -> list[dict]:
    b = results["binary"].get(key)
    if b is None:
        return []
    transport = b["stages_ms"].get("transport", float("nan"))
    share = transport / b["wall_ms"]
    rows = [{"target": f"{key} photo end to end <= {TARGET_E2E_S:.0f} s (embedded backends)",
             "measured": f"{b['wall_ms'] / 1000:.2f} s median, {b['wall_min_ms'] / 1000:.2f} s fastest",
             "met": b["wall_ms"] <= TARGET_E2E_S * 1000},
            {"target": f"transport < {TARGET_TRANSPORT_SHARE:.0%} of end to end at {key}",
             "measured": f"{share * 100:.2f}% ({transport:.1f} ms of {b['wall_ms']:.0f} ms)",
             "met": share < TARGET_TRANSPORT_SHARE}]
    w = results["wire"].get(key)
    if w is not None:
        rows.append({"target": f"wire >= {TARGET_WIRE_RATIO:.0f}x cheaper than JSON lists at {key}",
                     "measured": f"{w['ratio']:.0f}x ({w['ours_wire_ms']:.1f} ms vs "
                                 f"{w['original_wire_ms']:.0f} ms)",
                     "met": w["ratio"] >= TARGET_WIRE_RATIO})
    j = results["json_api"].get(key)
    if j is not None:
        rows.append({"target": f"(for reference) JSON API end to end / binary API at {key}",
                     "measured": f"{j['wall_ms'] / b['wall_ms']:.1f}x", "met": True})
    return rows


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(results["binary"])
    names = [s for s in MATTING_STAGES if any(s in results["binary"][k]["stages_ms"] for k in sizes)]
    fig, ax = plt.subplots(figsize=(7, 3.4), dpi=100)
    left = np.zeros(len(sizes))
    colours = plt.get_cmap("tab10").colors
    for i, name in enumerate(names + ["client"]):
        vals = np.array([results["binary"][k]["client_overhead_ms"] if name == "client"
                         else results["binary"][k]["stages_ms"].get(name, 0.0) for k in sizes])
        ax.barh(sizes, vals, left=left, label=name, color=colours[i % 10])
        left += vals
    ax.axvline(TARGET_E2E_S * 1000, color="k", ls="--", lw=1)
    ax.text(TARGET_E2E_S * 1000, len(sizes) - 0.5, " 1 s target", va="bottom", fontsize=8)
    ax.set_xlabel("milliseconds (median)")
    ax.set_title(f"POST /matte per stage ({results['machine']['cores']}-core CPU, no GPU)",
                 fontsize=10)
    ax.legend(fontsize=7, ncol=len(names) + 1, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(out_dir: Path, data_dir: Path | None = None, image_path: Path | None = None,
        reps: int = 5, json_reps: int = 2, clients=(1, 2, 4), per_client: int = 3,
        sizes=SIZES, profile: bool = True, progress=print) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = load_photo(Path(image_path) if image_path else Path(data_dir or default_data_dir()) / PHOTO)
    inputs = photos(base, sizes)
    machine = environment.describe()
    results = {"machine": machine, "reps": reps, "json_reps": json_reps, "photo": str(image_path or PHOTO),
               "binary": {}, "json_api": {}, "wire": {}}
    started = time.perf_counter()
    with running_services(log_dir=out_dir) as urls:
        results["startup_s"] = time.perf_counter() - started
        progress(f"  services up in {results['startup_s']:.1f} s")
        session = requests.Session()
        for key, (image, data) in inputs.items():
            time_binary(session, urls, data, 1)     # warm-up at this size
            results["binary"][key] = time_binary(session, urls, data, reps)
            b = results["binary"][key]
            progress(f"  binary {key}: {b['wall_ms']:.0f} ms end to end; stages "
                     + ", ".join(f"{k} {v:.1f}" for k, v in b["stages_ms"].items()))
        seg, mat = urls.processes
        results["memory_binary_api"] = {"segmentation": peak_rss_mib(seg.pid),
                                        "matting": peak_rss_mib(mat.pid)}
        for key, (image, data) in inputs.items():
            if image.shape[0] >= 700:
                results["wire"][key] = time_wire(session, urls, image, data, max(json_reps, 2))
                w = results["wire"][key]
                progress(f"  wire {key}: ours {w['ours_wire_ms']:.1f} ms, JSON lists "
                         f"{w['original_wire_ms']:.0f} ms ({w['ratio']:.0f}x)")
            results["json_api"][key] = time_json_api(session, urls, image, json_reps)
            progress(f"  JSON API {key}: {results['json_api'][key]['wall_ms']:.0f} ms end to end")
        key = "1280x720" if "1280x720" in inputs else next(iter(inputs))
        results["throughput_size"] = key
        results["throughput"] = []
        for n in clients:
            t = throughput(urls, inputs[key][1], n, per_client)
            results["throughput"].append(t)
            progress(f"  throughput {n} clients: {t['requests_per_s']:.2f} req/s, "
                     f"p50 {t['latency_p50_s']:.2f} s")
        seg, mat = urls.processes
        results["memory"] = {"segmentation": peak_rss_mib(seg.pid), "matting": peak_rss_mib(mat.pid)}
    results["targets"] = targets(results)
    if profile:
        key = "1280x720" if "1280x720" in inputs else next(iter(inputs))
        results["profile_size"] = key
        results["profile"] = profile_matting(inputs[key][0])
        results["matting_options"] = matting_options(inputs[key][0])
    machine["load_at_end"] = environment.load_average()
    (out_dir / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str))
    (out_dir / "benchmarks.md").write_text(markdown(results))
    plot(results, out_dir / "benchmark_stages.png")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    parser.add_argument("--data", default=None, help="data folder (default ../shared/data or $EVAL_DATA)")
    parser.add_argument("--image", default=None, help="photo to use instead of the default 720p portrait")
    parser.add_argument("--reps", type=int, default=5, help="requests per size (median)")
    parser.add_argument("--json-reps", type=int, default=2, help="JSON API requests per size")
    parser.add_argument("--clients", default="1,2,4", help="concurrent clients for throughput")
    parser.add_argument("--per-client", type=int, default=3, help="requests per client")
    parser.add_argument("--no-profile", action="store_true", help="skip the in-process profile")
    args = parser.parse_args(argv)
    data_dir = Path(args.data) if args.data else default_data_dir()
    if args.image is None and not (data_dir / PHOTO).is_file():
        print(f"benchmark photo {data_dir / PHOTO} not found; pass --image PHOTO or --data DIR")
        return 0
    out_dir = Path(args.out)
    results = run(out_dir, data_dir, args.image, args.reps, args.json_reps,
                  tuple(int(c) for c in args.clients.split(",") if c), args.per_client,
                  profile=not args.no_profile)
    command = "python benchmarks/bench_pipeline.py " + " ".join(argv or sys.argv[1:])
    print(environment.markdown(results["machine"], command.strip()))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
