#!/usr/bin/env bash
# Start a jobs worker for local use, and Redis (the queue) if none answers yet.
#
#   bash scripts/worker.sh                 # Redis on 127.0.0.1:6379 (started if needed) + a worker
#   JOBS_REDIS_URL=redis://10.0.0.5:6379/0 JOBS_DIR=/mnt/jobs bash scripts/worker.sh   # join a queue
#
# Extra arguments go to the worker (python -m jobs worker --help lists them). Redis started
# here keeps its data in .jobs/redis (append-only file: jobs survive a restart) and stops
# with the worker (Ctrl-C). Debian's redis-server package is installed when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh requirements.txt
URL="${JOBS_REDIS_URL:-redis://127.0.0.1:6379/0}"
export JOBS_REDIS_URL="$URL"
ping_redis() {
    .venv/bin/python -c "import redis,sys; redis.Redis.from_url('$URL', socket_connect_timeout=1).ping()" 2>/dev/null
}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
if ! ping_redis; then
    read -r HOST PORT < <(.venv/bin/python -c "from urllib.parse import urlsplit; u = urlsplit('$URL'); print(u.hostname or '127.0.0.1', u.port or 6379)")
    case "$HOST" in
        127.0.0.1|localhost|::1) ;;
        *) echo "worker: Redis at $URL does not answer; start it there, or unset JOBS_REDIS_URL"; exit 1 ;;
    esac
    if ! command -v redis-server >/dev/null; then
        if [ "$(id -u)" = 0 ]; then
            echo "worker: installing redis-server (Debian package)"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
        else
            echo "worker: redis-server is missing: sudo apt-get install redis-server"; exit 1
        fi
    fi
    mkdir -p .jobs/redis
    echo "worker: starting Redis on $HOST:$PORT (data in .jobs/redis)"
    redis-server --port "$PORT" --bind 127.0.0.1 --dir "$PWD/.jobs/redis" --appendonly yes \
        --save "" --daemonize no --logfile "$PWD/.jobs/redis/redis.log" &
    pids+=($!)
    for _ in $(seq 1 50); do ping_redis && break; sleep 0.2; done
    ping_redis || { echo "worker: Redis did not start; see .jobs/redis/redis.log"; exit 1; }
fi
echo "worker: queue at $URL, job folder ${JOBS_DIR:-<temp>/people-matting-jobs}"
.venv/bin/python -m jobs worker "$@" &
pids+=($!)
wait "${pids[-1]}"
