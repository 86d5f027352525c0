#!/usr/bin/env bash
# Runs gunicorn and a Celery worker side by side in the foreground; Ctrl-C (or SIGTERM) stops both,
# and if either one dies the other is stopped too, so `make run` never leaves half a system behind.
# Called by `make run` after install/migrate/bootstrap/collectstatic.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
WEB_WORKERS=${WEB_WORKERS:-2}
WEB_TIMEOUT=${WEB_TIMEOUT:-120}
WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-1}
QUEUES=${QUEUES:-inference,training,celery}
LOGLEVEL=${LOGLEVEL:-info}
PY="$VENV/bin/python"

# A wildcard bind address is reachable through loopback; that is what the readiness probe uses.
case "$HOST" in
  0.0.0.0|'') probe_host=127.0.0.1 ;;
  ::|'[::]') probe_host='[::1]' ;;
  *:*) probe_host="[${HOST#[}"; probe_host="${probe_host%]}]" ;;
  *) probe_host=$HOST ;;
esac
url="http://$probe_host:$PORT/"

pids=()
stop_all() {
  trap - INT TERM
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap 'echo "stopping web and worker..."; stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

"$PY" -m celery -A kidneyweb worker -Q "$QUEUES" --concurrency "$WORKER_CONCURRENCY" --loglevel="$LOGLEVEL" &
pids+=($!)

"$PY" -m gunicorn kidneyweb.wsgi:application --bind "$HOST:$PORT" --workers "$WEB_WORKERS" \
  --timeout "$WEB_TIMEOUT" --graceful-timeout 10 --access-logfile - &
pids+=($!)

# Announce the address once /healthz says the database and the broker answer.
(
  for _ in $(seq 1 120); do
    if "$PY" - "$url" <<'PY' 2>/dev/null; then
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "healthz", timeout=3) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
      printf '\n==> kidneyweb is up: %s  (log in with the demo credentials printed above; Ctrl-C stops web and worker)\n\n' "$url"
      exit 0
    fi
    sleep 1
  done
  printf '\n==> %shealthz did not answer 200 within 120 s; see the log above\n\n' "$url" >&2
) &
probe=$!

echo "==> starting kidneyweb on $url (web: gunicorn, worker queues: $QUEUES)"

set +e
wait -n "${pids[@]}"
status=$?
set -e
kill "$probe" 2>/dev/null || true
echo "web or worker exited (status $status); stopping the other" >&2
stop_all
exit "$status"
