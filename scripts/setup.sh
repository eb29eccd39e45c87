#!/usr/bin/env bash
# Create .venv with this machine's python3 and install the project (editable) with the
# extras a requirements file picks.
# Usage: bash scripts/setup.sh [requirements-file]   (default: requirements.txt)
# Re-running is cheap: it reinstalls only when pyproject.toml or the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
REQS="${1:-requirements.txt}"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(basename "$REQS")"
digest=$(cat pyproject.toml requirements*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
    echo "setup: installing $REQS (torch, mediapipe, ...; a few minutes the first time)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQS"
    if .venv/bin/python -c "import pymatting" 2>/dev/null; then
        # Compile pymatting's numba functions into their on-disk cache once, here, rather
        # than in every service worker's first start.
        echo "setup: compiling the matting solver (once)"
        .venv/bin/python -c "from core.matters import create_matter; create_matter('closed-form').warm_up()"
    fi
    echo "$digest" > "$stamp"
fi
