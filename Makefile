# kidneyweb: the two commands are `make run` and `make test`; the rest are the steps they are built from.
# GNU make. Environment variables (DATABASE_URL, REDIS_URL, SECRET_KEY, ...) pass through to every command.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The interpreter that creates the virtualenv; the project targets Python 3.11.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV ?= .venv
PY := $(VENV)/bin/python

HOST ?= 127.0.0.1
PORT ?= 8000
WEB_WORKERS ?= 2
WEB_TIMEOUT ?= 120
# One worker process: each loads its own copy of the model, and the target machines have 2 cores.
WORKER_CONCURRENCY ?= 1
QUEUES ?= inference,training,exports,celery
LOGLEVEL ?= info

KIDNEY_DATA_DIR ?= ../shared/data/ct-kidney
# Empty: config.yaml's model_out, the shipped model's path.
MODEL_OUT ?=
TRAIN_ARGS ?=
PYTEST_ARGS ?=

# Stamps live inside the venv, so deleting .venv also forgets what was installed.
RUNTIME_STAMP := $(VENV)/.kidneyweb-runtime.stamp
DEV_STAMP := $(VENV)/.kidneyweb-dev.stamp

.PHONY: help run test install install-dev setup migrate bootstrap collectstatic web worker train \
        compose-config clean distclean

help:
	@echo "kidneyweb"
	@echo "  make run             install, migrate, register the model, create the demo login, start web + worker"
	@echo "  make test            run the whole test suite (PYTEST_ARGS='-k upload -x' to narrow it)"
	@echo "  make install         create $(VENV) and install runtime requirements"
	@echo "  make install-dev     ... plus test requirements"
	@echo "  make migrate         apply database migrations"
	@echo "  make bootstrap       register the shipped model, create the demo organization and clinician"
	@echo "  make web             gunicorn only, on $(HOST):$(PORT)"
	@echo "  make worker          Celery workers only (queues $(QUEUES); training and exports in workers of their own)"
	@echo "  make train           train on $(KIDNEY_DATA_DIR), writing $(or $(MODEL_OUT),config.yaml's model_out) (MODEL_OUT=path for another)"
	@echo "  make compose-config  validate docker-compose.yml"
	@echo "  make clean           remove caches and collected static files; distclean also .venv, var/, media/"

# --- environment -------------------------------------------------------------------------------

$(PY):
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; v == (3, 11) or print(f"warning: kidneyweb targets Python 3.11, creating the venv with {v[0]}.{v[1]}", file=sys.stderr)'
	$(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }

$(RUNTIME_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt
	@touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt
	@touch $@ $(RUNTIME_STAMP)

install: $(RUNTIME_STAMP)
install-dev: $(DEV_STAMP)

# --- application steps -------------------------------------------------------------------------

var:
	@mkdir -p var

migrate: install | var
	$(PY) manage.py migrate --noinput

bootstrap: migrate
	$(PY) manage.py bootstrap

collectstatic: install
	$(PY) manage.py collectstatic --noinput --verbosity 0

setup: migrate bootstrap collectstatic

run: setup
	@HOST='$(HOST)' PORT='$(PORT)' VENV='$(VENV)' WEB_WORKERS='$(WEB_WORKERS)' WEB_TIMEOUT='$(WEB_TIMEOUT)' \
	  WORKER_CONCURRENCY='$(WORKER_CONCURRENCY)' QUEUES='$(QUEUES)' LOGLEVEL='$(LOGLEVEL)' \
	  scripts/run.sh

web: migrate collectstatic
	$(PY) -m gunicorn kidneyweb.wsgi:application --bind '$(HOST):$(PORT)' --workers $(WEB_WORKERS) \
	  --timeout $(WEB_TIMEOUT) --config gunicorn.conf.py

worker: install | var
	@VENV='$(VENV)' QUEUES='$(QUEUES)' WORKER_CONCURRENCY='$(WORKER_CONCURRENCY)' LOGLEVEL='$(LOGLEVEL)' scripts/worker.sh

train: install
	$(PY) -m mlcore train --data '$(KIDNEY_DATA_DIR)' $(if $(MODEL_OUT),--out '$(MODEL_OUT)') $(TRAIN_ARGS)

# --- checks ------------------------------------------------------------------------------------

test: $(DEV_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

compose-config:
	@VENV='$(VENV)' PYTHON='$(PYTHON)' scripts/compose.sh config -q && echo "docker-compose.yml: valid"

# --- housekeeping ------------------------------------------------------------------------------

clean:
	rm -rf staticfiles .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Also deletes the local SQLite database, the file broker and uploaded scans.
distclean: clean
	rm -rf $(VENV) var media
