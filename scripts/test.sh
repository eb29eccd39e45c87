#!/usr/bin/env bash
# Command 2: set up (tests' requirements included) and run the whole test suite.
# Extra arguments go to pytest, e.g. bash scripts/test.sh -k trimap
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements-dev.txt
.venv/bin/ruff check .
.venv/bin/python -m pytest tests -ra "$@"
