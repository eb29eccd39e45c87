"""``python -m evaluation [--quick | --full] [--out results/] [--data DIR] ...``

Exit status: 0 when every figure meets its floor (or there is no data in quick mode),
1 when a floor is not met, 2 for bad arguments or missing data in full mode.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from evaluation.harness import STAGES, Options, run
from evaluation.matting_eval import REFERENCES


def _csv(text: str) -> tuple:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="a fixed handful of images, our backends only (default; CI)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="every image, reference solvers, speed benchmark (publication)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder (default results/)")
    parser.add_argument("--data", type=Path, default=None,
                        help="data folder (default $EVAL_DATA, else ../shared/data)")
    parser.add_argument("--stages", type=_csv, default=None,
                        help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most N images per data set (floors are then not checked)")
    parser.add_argument("--references", type=_csv, default=None,
                        help=f"pymatting solvers to compare with (full default: {','.join(REFERENCES)}; "
                        "'none' for none)")
    parser.add_argument("--band-scales", type=lambda s: tuple(float(x) for x in _csv(s)), default=None,
                        help="band_scale values of the scaled-trimap variants (quick: 0.05; full: 0.05,0.1)")
    parser.add_argument("--no-cache", dest="use_cache", action="store_false", default=None,
                        help="recompute the reference solvers' mattes instead of reusing OUT/cache")
    parser.add_argument("--publish", action="store_true", default=None,
                        help="also write docs/evaluation.md, docs/benchmarks.md and docs/img/")
    args = parser.parse_args(argv)
    args.mode = args.mode or "quick"
    if args.stages and set(args.stages) - set(STAGES):
        parser.error(f"unknown stage(s) {sorted(set(args.stages) - set(STAGES))}; choose from {STAGES}")
    if args.references == ("none",):
        args.references = ()
    if args.references and set(args.references) - set(REFERENCES):
        parser.error(f"unknown reference solver(s); choose from {REFERENCES}")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    opts = Options.for_mode(args.mode, out=args.out, data=args.data, stages=args.stages,
                            limit=args.limit, references=args.references,
                            band_scales=args.band_scales, use_cache=args.use_cache,
                            publish=args.publish,
                            command=" ".join(["python -m evaluation", *map(shlex.quote, argv)]))
    return run(opts, progress=lambda msg: print(msg, flush=True))


if __name__ == "__main__":
    sys.exit(main())
