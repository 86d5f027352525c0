#!/bin/sh
# Container entrypoint. With RUN_MIGRATIONS=1 (the web service in docker-compose.yml) it applies
# migrations and runs the idempotent bootstrap (registers the shipped model as the active
# ModelVersion, creates the demo organization and clinician) before starting the command.
# BOOTSTRAP_ARGS=--no-demo skips the demo login (a real pilot).
set -eu

case "${SECRET_KEY:-}" in
  ''|change-me*)
    if [ "${DJANGO_DEBUG:-0}" = "0" ]; then
      echo "error: set SECRET_KEY to a long random value (python -c 'import secrets; print(secrets.token_urlsafe(50))')" >&2
      exit 1
    fi ;;
esac

if [ "${RUN_MIGRATIONS:-0}" = "1" ]; then
  python manage.py migrate --noinput
  # shellcheck disable=SC2086 # word splitting of the options is intended
  python manage.py bootstrap ${BOOTSTRAP_ARGS:-}
fi

exec "$@"
