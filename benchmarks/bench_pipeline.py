"""Speed of the whole service pipeline (per-stage latency, throughput, memory, wire format):
the command line of :mod:`evaluation.speed`.

    python benchmarks/bench_pipeline.py [--out results/] [--reps 5]
"""
import sys

from evaluation.speed import main

if __name__ == "__main__":
    sys.exit(main())
