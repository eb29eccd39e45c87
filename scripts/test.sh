#!/usr/bin/env bash
# Command 2: set up (tests' requirements included) and run the whole test suite.
# Extra arguments go to pytest, e.g. bash scripts/test.sh -k trimap
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser tests need Debian's chromium and chromium-driver, the job tests redis-server:
# installed here when missing and we may (root, apt-get present); else those tests skip.
missing=()
for pair in chromium:chromium chromedriver:chromium-driver redis-server:redis-server; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]} (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bash scripts/setup.sh requirements-dev.txt
.venv/bin/ruff check .
.venv/bin/python -m pytest tests -ra "$@"
