"""Quick end-to-end latency of one photo size through both real services.

    .venv/bin/python benchmarks/bench_e2e.py [--image PHOTO] [--size 1280x720] [--reps 5]

Starts the services (embedded backends) on free loopback ports, sends the photo (fitted,
cover, to --size, as JPEG) to ``POST /matte`` once to warm up and then --reps times, and
prints the median and fastest wall clock with the Server-Timing stages of the median
request. The full benchmark is ``python -m evaluation --full``.
"""
import argparse
import statistics
import time

import requests

from core.compositing import fit_image
from core.images import encode_image, read_image_file
from evaluation.services import REPO_ROOT, running_services
from service_common.timing import parse_server_timing


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=str(REPO_ROOT / "samples" / "astronaut.jpg"))
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    photo = encode_image(fit_image(read_image_file(args.image), (height, width), "cover"), "jpeg")
    with running_services(["--backend", "mediapipe"], ["--backend", "closed-form"]) as urls:
        requests.post(urls.matting + "/matte", files={"image": photo}, timeout=300)
        runs = []
        for _ in range(args.reps):
            started = time.perf_counter()
            response = requests.post(urls.matting + "/matte", files={"image": photo}, timeout=300)
            response.raise_for_status()
            runs.append((time.perf_counter() - started,
                         parse_server_timing(response.headers["Server-Timing"])))
    runs.sort(key=lambda run: run[0])
    median = statistics.median(t for t, _ in runs)
    print(f"{args.size}: median {median:.3f} s, fastest {runs[0][0]:.3f} s over {args.reps} requests")
    print("stages of the median request (ms):",
          ", ".join(f"{k} {v:.0f}" for k, v in runs[len(runs) // 2][1].items()))


if __name__ == "__main__":
    main()
