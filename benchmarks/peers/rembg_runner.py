"""Runs rembg on a list of images, inside rembg's own virtualenv (numpy 2); measurement only.

Started by ``benchmarks/bench_people.py`` as ``<peer venv>/bin/python rembg_runner.py
JOBS.json OUT_DIR``, with ``U2NET_HOME`` pointing at a folder holding ``u2netp.onnx`` so
rembg finds the model there and downloads nothing. ``JOBS.json`` is a list of
``{"id": str, "path": str}`` (PNG files); for each job this writes ``OUT_DIR/<id>.npy``
(the cutout's alpha, ``uint8`` H x W) and, at the end, ``OUT_DIR/timings.json``:
``{"model": ..., "rembg": version, "seconds": {id: s}, "cpu_seconds": {id: s},
"errors": {id: message}}`` (wall-clock and this process's CPU time, all threads).
Only the ``remove`` call is timed (the image is already decoded), after one warm-up call.
This file imports nothing from the project: it runs under another interpreter.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image


def main(jobs_path: str, out_dir: str, model: str = "u2netp") -> int:
    import rembg
    from rembg import new_session, remove

    jobs = json.loads(Path(jobs_path).read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    session = new_session(model)
    if jobs:  # the first call sets up onnxruntime's buffers
        remove(Image.open(jobs[0]["path"]).convert("RGB"), session=session)
    seconds, cpu, errors = {}, {}, {}
    for job in jobs:
        image = Image.open(job["path"]).convert("RGB")
        image.load()
        try:
            started, cpu_started = time.perf_counter(), time.process_time()
            cutout = remove(image, session=session)
            seconds[job["id"]] = time.perf_counter() - started
            cpu[job["id"]] = time.process_time() - cpu_started
        except Exception as exc:  # noqa: BLE001 - a peer's failure is a measurement
            errors[job["id"]] = f"{type(exc).__name__}: {exc}"
            continue
        alpha = np.asarray(cutout.convert("RGBA"))[:, :, 3]
        np.save(out / f"{job['id']}.npy", np.ascontiguousarray(alpha, dtype=np.uint8))
    (out / "timings.json").write_text(json.dumps(
        {"model": model, "rembg": getattr(rembg, "__version__", "?"),
         "seconds": seconds, "cpu_seconds": cpu, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
