#!/bin/sh
# Container entrypoint. With RUN_MIGRATIONS=1 (the web service in docker-compose.yml) it applies
# migrations and runs the idempotent bootstrap (registers the shipped model as the active
# ModelVersion, creates the demo organization and clinician) before starting the command.
# BOOTSTRAP_ARGS=--no-demo skips the demo login (a real pilot).
set -eu

# An unset or placeholder SECRET_KEY with DEBUG off is refused by kidneyweb/settings.py itself, for
# every command below and in every container (web and workers alike).

if [ "${RUN_MIGRATIONS:-0}" = "1" ]; then
  python manage.py migrate --noinput
  # shellcheck disable=SC2086 # word splitting of the options is intended
  python manage.py bootstrap ${BOOTSTRAP_ARGS:-}
fi

exec "$@"
