#!/usr/bin/env bash
# Runs gunicorn and the Celery workers (scripts/worker.sh) side by side in the foreground; Ctrl-C (or SIGTERM) stops both,
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
QUEUES=${QUEUES:-inference,training,exports,celery}
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

# Refuse early when something else holds the port: the readiness probe would otherwise greet that
# other server while gunicorn gives up.
if ! "$PY" - "$HOST" "$PORT" <<'PY'; then
import socket, sys
host, port = sys.argv[1].strip("[]") or "0.0.0.0", int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError as exc:
        sys.exit(f"error: cannot listen on {host}:{port} ({exc.strerror}); choose another port, e.g. make run PORT={port + 1}")
PY
  exit 1
fi

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

# One worker for inference (and the default queue), one for training, one for exports: see scripts/worker.sh.
VENV="$VENV" QUEUES="$QUEUES" WORKER_CONCURRENCY="$WORKER_CONCURRENCY" LOGLEVEL="$LOGLEVEL" scripts/worker.sh &
pids+=($!)

"$PY" -m gunicorn kidneyweb.wsgi:application --bind "$HOST:$PORT" --workers "$WEB_WORKERS" \
  --timeout "$WEB_TIMEOUT" --graceful-timeout 10 --config gunicorn.conf.py &
pids+=($!)

# Announce the address once /healthz says the database and the broker answer.
(
  for _ in $(seq 1 120); do
    if "$PY" - "$url" <<'PY' 2>/dev/null; then
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "healthz", timeout=3) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
      printf '\n==> kidneyweb is up: %s  (user "demo": password printed by bootstrap on first run, or DEMO_PASSWORD; Ctrl-C stops web and worker)\n\n' "$url"
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
