#!/usr/bin/env bash
# Starts the Celery workers that consume QUEUES (default inference,training,exports,celery) in the foreground.
# The training queue gets a worker process of its own: a training run holds its worker for minutes to
# hours, and a diagnosis must never wait behind it. The training worker runs one task at a time and a
# fresh pool process per run (TensorFlow gives memory back only when its process ends). Whole-record
# exports, which take minutes for a large record, get one too, so they wait neither on a diagnosis nor on
# a training run.
# SIGTERM/Ctrl-C stop every worker; if one exits the others are stopped too.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
QUEUES=${QUEUES:-inference,training,exports,celery}
WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-1}
LOGLEVEL=${LOGLEVEL:-info}
PY="$VENV/bin/python"

IFS=, read -ra requested <<< "$QUEUES"
others=()
training=0
exports=0
for queue in "${requested[@]}"; do
  queue=${queue// /}
  [[ -z $queue ]] && continue
  case $queue in
    training) training=1 ;;
    exports) exports=1 ;;
    *) others+=("$queue") ;;
  esac
done

pids=()
stop_all() {
  trap - INT TERM
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

if ((${#others[@]})); then
  other_queues=$(IFS=,; echo "${others[*]}")
  echo "==> worker celery@$(hostname): queues $other_queues, concurrency $WORKER_CONCURRENCY"
  # --beat: this worker also sends the scheduled sweep for training runs whose worker died
  # (settings.CELERY_BEAT_SCHEDULE); a sweep sent twice by two such workers does no harm.
  "$PY" -m celery -A kidneyweb worker -Q "$other_queues" -n "celery@%h" --concurrency "$WORKER_CONCURRENCY" \
    --beat --loglevel="$LOGLEVEL" &
  pids+=($!)
fi
if ((training)); then
  echo "==> worker training@$(hostname): queue training, one run at a time"
  "$PY" -m celery -A kidneyweb worker -Q training -n "training@%h" --concurrency 1 --max-tasks-per-child 1 \
    --loglevel="$LOGLEVEL" &
  pids+=($!)
fi
if ((exports)); then
  echo "==> worker exports@$(hostname): queue exports, one export at a time"
  "$PY" -m celery -A kidneyweb worker -Q exports -n "exports@%h" --concurrency 1 --loglevel="$LOGLEVEL" &
  pids+=($!)
fi
if ((${#pids[@]} == 0)); then
  echo "error: QUEUES='$QUEUES' names no queue" >&2
  exit 2
fi

set +e
wait -n "${pids[@]}"
status=$?
set -e
echo "a worker exited (status $status); stopping the others" >&2
stop_all
exit "$status"
