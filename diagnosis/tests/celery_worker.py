"""Start a real Celery worker process on the test database, media folder and broker.

Used by the end-to-end tests (test_worker_integration, browser tests). The worker inherits the test
run's KIDNEYWEB_TEST_TMP, so it sees the same SQLite file or PostgreSQL test database, the same media
and the same broker (filesystem folders, or Redis keys under the run's prefix).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from diagnosis.models import Prediction

TIMEOUT_SECONDS = 120


def database_url_of_the_test_database() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def shipped_model_path() -> Path:
    return Path(settings.KIDNEYWEB_MODEL_PATH)


def require_shipped_model() -> Path:
    path = shipped_model_path()
    if not path.is_file():
        pytest.skip(f"shipped model not found at {path}; train it or set KIDNEYWEB_MODEL_PATH")
    return path


@contextmanager
def celery_worker(model_path: Path, log_path: Path, queues: str = "inference") -> Iterator[subprocess.Popen]:
    """A worker process for the duration of the block; its output goes to ``log_path``."""
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite" and (name in ("", ":memory:") or "mode=memory" in name):
        pytest.fail("the SQLite test database must be a file for a second process to share it (settings_test)")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kidneyweb.settings_test",
        "DATABASE_URL": database_url_of_the_test_database(),
        "KIDNEYWEB_MODEL_PATH": str(model_path),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    command = [
        sys.executable, "-m", "celery", "-A", "kidneyweb", "worker",
        "-Q", queues, "-P", "solo", "-c", "1", "--loglevel=info",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"test-{uuid.uuid4().hex[:8]}@%h",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until_final(prediction_ids: list[int], process, log_path: Path, timeout: float = TIMEOUT_SECONDS) -> list[Prediction]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        predictions = list(Prediction.objects.filter(pk__in=prediction_ids).order_by("pk"))
        if all(p.is_final for p in predictions):
            return predictions
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}:\n{log_path.read_text()[-5000:]}")
        time.sleep(0.5)
    states = {p.pk: p.status for p in Prediction.objects.filter(pk__in=prediction_ids)}
    pytest.fail(f"no result within {timeout} s ({states}); worker log:\n{log_path.read_text()[-5000:]}")
