#!/usr/bin/env bash
# Serve the site with two Celery workers beside it: one evaluates (and measures latency), the
# other does housekeeping (the default queue and beat, so the watchdog), which a six-hour
# evaluation therefore never blocks. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
BIN=$(dirname "$PY")
mkdir -p var/log
# The offline demo checkpoint is served by this site: allow exactly its host and port for
# checkpoint downloads, unless the operator chose the allow-list. A bare 127.0.0.1 would
# allow only ports 80 and 443; "127.0.0.1:*" would open every local service (Redis,
# PostgreSQL) to a submitted URL.
export CHECKPOINT_ALLOWED_HOSTS=${CHECKPOINT_ALLOWED_HOSTS-127.0.0.1:$PORT,localhost:$PORT,$HOST:$PORT}
DEMO_URL="http://$HOST:$PORT/media/demo/demo-tiny-llama.tar.gz"

"$BIN/celery" -A config worker --loglevel=INFO --concurrency=1 -n "eval@%h" \
    --queues="${WORKER_QUEUES:-eval,latency.local-cpu}" \
    >var/log/worker.log 2>&1 &
WORKER=$!
"$BIN/celery" -A config worker --loglevel=INFO --concurrency=1 -n "housekeeping@%h" \
    --queues=default --beat --schedule=var/celerybeat-schedule \
    >var/log/housekeeping.log 2>&1 &
HOUSEKEEPING=$!

echo "Workers started: evaluation (pid $WORKER, log var/log/worker.log) and housekeeping"
echo "(pid $HOUSEKEEPING, log var/log/housekeeping.log: the watchdog)."
echo "The leaderboard is at http://$HOST:$PORT/  (Ctrl-C stops the site and the workers)"
echo "Try a submission: http://$HOST:$PORT/submit/ offers a demo checkpoint served by this site."
echo "Or from a terminal: $PY manage.py evaluate $DEMO_URL"
"$BIN/gunicorn" config.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 \
    --access-logfile - --error-logfile - &
WEB=$!
# Whichever stops first (or Ctrl-C / TERM here), stop the other too.
trap 'kill $WORKER $HOUSEKEEPING $WEB 2>/dev/null; wait' EXIT INT TERM
wait -n $WORKER $HOUSEKEEPING $WEB
