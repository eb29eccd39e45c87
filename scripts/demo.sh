#!/usr/bin/env bash
# Command 1: set up, start both services, composite the bundled sample photo, stop them.
# Writes output/astronaut_green.jpg, output/astronaut_rocket.jpg and output/astronaut_cutout.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
SEG_PORT="${SEGMENTATION_PORT:-3000}"
MAT_PORT="${MATTING_PORT:-5000}"
mkdir -p output
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
.venv/bin/python -m segmentation_api --port "$SEG_PORT" > output/segmentation.log 2>&1 &
pids+=($!)
.venv/bin/python -m matting_api --port "$MAT_PORT" \
    --segmentation-url "http://127.0.0.1:$SEG_PORT" > output/matting.log 2>&1 &
pids+=($!)
for url in "http://127.0.0.1:$SEG_PORT" "http://127.0.0.1:$MAT_PORT"; do
    for _ in $(seq 1 300); do
        if .venv/bin/python -c "import requests,sys; sys.exit(0 if requests.get('$url/health', timeout=2).ok else 1)" 2>/dev/null; then
            break
        fi
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a service failed to start; see output/*.log"; tail -20 output/*.log; exit 1; }; done
        sleep 1
    done
done
echo "demo: services are up (segmentation :$SEG_PORT, matting :$MAT_PORT)"
SERVER="http://127.0.0.1:$MAT_PORT"
.venv/bin/python inference.py --image_path samples/astronaut.jpg --output_path output/astronaut_green.jpg --server "$SERVER"
.venv/bin/python inference.py --image_path samples/astronaut.jpg --output_path output/astronaut_rocket.jpg \
    --background samples/background_rocket.jpg --server "$SERVER"
.venv/bin/python inference.py --image_path samples/astronaut.jpg --output_path output/astronaut_cutout.png \
    --output-type cutout --server "$SERVER"
echo "demo: done; see output/"
