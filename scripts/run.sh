#!/usr/bin/env bash
# Serve the site and run a Celery worker beside it; Ctrl-C stops both.
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

"$BIN/celery" -A config worker --loglevel=INFO --concurrency=1 \
    --queues="${WORKER_QUEUES:-default,eval,latency.local-cpu}" --beat --schedule=var/celerybeat-schedule \
    >var/log/worker.log 2>&1 &
WORKER=$!

echo "Worker started (pid $WORKER, log var/log/worker.log)."
echo "The leaderboard is at http://$HOST:$PORT/  (Ctrl-C stops the site and the worker)"
echo "Try a submission: http://$HOST:$PORT/submit/ offers a demo checkpoint served by this site."
echo "Or from a terminal: $PY manage.py evaluate $DEMO_URL"
"$BIN/gunicorn" config.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 \
    --access-logfile - --error-logfile - &
WEB=$!
# Whichever stops first (or Ctrl-C / TERM here), stop the other too.
trap 'kill $WORKER $WEB 2>/dev/null; wait' EXIT INT TERM
wait -n $WORKER $WEB
