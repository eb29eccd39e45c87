#!/usr/bin/env bash
# The GPU check (issue 17): FBA and Mask R-CNN on CPU and CUDA, one short run (< 5 min on
# an H200). Arguments go to scripts/gpu_check.py, e.g.
#   bash scripts/gpu_check.sh                               # writes results/gpu_check.{json,md}
#   bash scripts/gpu_check.sh --out "$OUT/gpu_check.json"   # elsewhere
#   bash scripts/gpu_check.sh --quick                       # one small photo (seconds)
#
# Python: $PYTHON if set, else the first of .venv/bin/python and python3 whose torch sees
# CUDA, else the first that has what the check imports (numpy, cv2, PIL, torch,
# torchvision). Only when an import is missing does it install, and only from the
# project's own files: wheels in .whl/ when that folder exists (offline, --no-index, into
# $GPU_CHECK_SITE), else the pinned lines of requirements-matting.txt and
# requirements-segmentation.txt through pip (into .venv when that is the Python, else
# into $GPU_CHECK_SITE). Nothing else is downloaded; the check itself downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
SITE="${GPU_CHECK_SITE:-/tmp/gpu_check_site}"
# module -> its requirement's name in the requirements files
declare -A REQUIREMENT=([numpy]=numpy [cv2]=opencv-contrib-python [PIL]=Pillow
                        [torch]=torch [torchvision]=torchvision)
MODULES="numpy cv2 PIL torch torchvision"

probe() {  # what Python "$1" lacks of $MODULES, and whether its torch sees CUDA:
    # prints "MISSING...|cuda" or "MISSING...|no CUDA" (all of $MODULES if it cannot run)
    "$1" - "$MODULES" <<'EOF' 2>/dev/null || echo "$MODULES|no CUDA"
import importlib, sys
missing = []
for name in sys.argv[1].split():
    try:
        importlib.import_module(name)
    except Exception:
        missing.append(name)
cuda = "torch" not in missing and importlib.import_module("torch").cuda.is_available()
print(" ".join(missing) + ("|cuda" if cuda else "|no CUDA"))
EOF
}

candidates=()
if [ -n "${PYTHON:-}" ]; then
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        echo "gpu_check: PYTHON=$PYTHON is not a program here" >&2
        exit 2
    fi
    candidates=("$PYTHON")
else
    for c in .venv/bin/python python3; do
        if command -v "$c" >/dev/null 2>&1; then candidates+=("$c"); fi
    done
fi
if [ ${#candidates[@]} -eq 0 ]; then
    echo "gpu_check: no Python found (set PYTHON, or run scripts/setup.sh)" >&2
    exit 2
fi
declare -A PROBED=()
PY="" PY_COMPLETE=""
for c in "${candidates[@]}"; do  # the first whose torch sees CUDA, else the first with
    PROBED[$c]="$(probe "$c")"    # everything, else the first
    if [ "${PROBED[$c]}" = "|cuda" ]; then PY="$c"; break; fi
    if [ -z "$PY_COMPLETE" ] && [ "${PROBED[$c]%%|*}" = "" ]; then PY_COMPLETE="$c"; fi
done
PY="${PY:-${PY_COMPLETE:-${candidates[0]}}}"

found="${PROBED[$PY]}"
missing="${found%%|*}"
if [ -n "$missing" ]; then
    echo "gpu_check: $PY lacks: $missing" >&2
    if compgen -G ".whl/*.whl" >/dev/null; then
        echo "gpu_check: installing the wheels in .whl/ into $SITE (offline)" >&2
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" .whl/*.whl
        export PYTHONPATH="$PYTHONPATH:$SITE"
    else
        specs=()
        for module in $missing; do
            name="${REQUIREMENT[$module]}"
            line="$(grep -hiE "^${name}([=<>~! ]|$)" requirements-matting.txt \
                    requirements-segmentation.txt | head -n 1 | sed 's/#.*//; s/ *$//')"
            specs+=("${line:-$name}")
        done
        target=()
        if [ "$PY" != ".venv/bin/python" ]; then target=(--target "$SITE"); fi
        echo "gpu_check: pip install ${specs[*]} ${target[*]}" >&2
        if ! "$PY" -m pip install -q --disable-pip-version-check "${target[@]}" "${specs[@]}"
        then
            cat >&2 <<EOF
gpu_check: could not install ${specs[*]} (no package index reachable?).
Carry them as wheels instead. On a machine with internet, in the repository root:
    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
        --implementation cp --platform manylinux_2_28_x86_64 \\
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl ${specs[*]}
(match --python-version to this machine's: $("$PY" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo unknown);
add each missing dependency too, one version of each), bring .whl/ along, and run this
script again: it installs .whl/*.whl offline. torch itself is too large to carry (about
a gigabyte with CUDA); use a machine or a Python that has it (the GPU machine's python3 does).
EOF
            exit 2
        fi
        if [ ${#target[@]} -gt 0 ]; then export PYTHONPATH="$PYTHONPATH:$SITE"; fi
    fi
    found="$(probe "$PY")"
    missing="${found%%|*}"
    if [ -n "$missing" ]; then
        echo "gpu_check: still missing after the install: $missing" >&2
        exit 2
    fi
fi
echo "gpu_check: $PY, ${found#*|}" >&2
exec "$PY" scripts/gpu_check.py "$@"
