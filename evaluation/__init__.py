"""Evaluation harness: quality on real data (matting, segmentation, the whole pipeline)
and, in full mode, speed. ``python -m evaluation --quick`` (CI) or ``--full`` (publication).

Data live outside the repository (``../shared/data``, or ``--data`` / ``$EVAL_DATA``);
see docs/evaluation.md for what is measured and how.
"""
