"""End to end: a real Celery worker process diagnoses a real CT slice uploaded through the service.

Runs against whatever the settings point at: SQLite and the filesystem broker by default, PostgreSQL
and Redis when DATABASE_URL and REDIS_URL are set (as in CI).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.files import File
from django.db import connection

from diagnosis import services
from diagnosis.models import Prediction

from .factories import PatientFactory

pytestmark = pytest.mark.integration

TIMEOUT_SECONDS = 120


def database_url_of_the_test_database() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def shipped_model() -> Path:
    path = Path(settings.KIDNEYWEB_MODEL_PATH)
    if not path.is_file():
        pytest.skip(f"shipped model not found at {path}; train it or set KIDNEYWEB_MODEL_PATH")
    return path


@pytest.fixture
def worker(transactional_db, shipped_model, ct_slice, inference_queue, tmp_path):
    """A Celery worker process on the test database, media folder and broker; stopped after the test."""
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite" and (name in ("", ":memory:") or "mode=memory" in name):
        pytest.fail("the SQLite test database must be a file for a second process to share it (settings_test)")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kidneyweb.settings_test",
        "DATABASE_URL": database_url_of_the_test_database(),
        "KIDNEYWEB_MODEL_PATH": str(shipped_model),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "kidneyweb", "worker",
        "-Q", "inference", "-P", "solo", "-c", "1", "--loglevel=info",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"integration-{uuid.uuid4().hex[:8]}@%h",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def upload(path: Path, patient, user):
    with path.open("rb") as handle:
        return services.scan_create(patient=patient, file=File(handle, name=path.name), uploaded_by=user)


def wait_until_final(prediction_ids: list[int], process, log_path: Path) -> list[Prediction]:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        predictions = list(Prediction.objects.filter(pk__in=prediction_ids).order_by("pk"))
        if all(p.is_final for p in predictions):
            return predictions
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}:\n{log_path.read_text()[-5000:]}")
        time.sleep(0.5)
    states = {p.pk: p.status for p in Prediction.objects.filter(pk__in=prediction_ids)}
    pytest.fail(f"no result within {TIMEOUT_SECONDS} s ({states}); worker log:\n{log_path.read_text()[-5000:]}")


def test_a_real_worker_diagnoses_real_ct_slices_and_loads_the_model_once(
    worker, shipped_model, ct_slice, organization, clinician
):
    process, log_path = worker
    version = services.model_version_register(path=shipped_model, activate=True)
    patient = PatientFactory(organization=organization)
    neighbours = sorted(ct_slice.parent.glob("*.jpg"))[:2]

    # scan_create commits and sends the task on commit; nothing here calls the task directly.
    scans = [upload(path, patient, clinician) for path in neighbours]
    predictions = wait_until_final([s.latest_prediction.pk for s in scans], process, log_path)

    log = log_path.read_text()
    for prediction in predictions:
        assert prediction.status == Prediction.Status.DONE, prediction.failure_reason
        assert prediction.label in version.class_names
        assert set(prediction.probabilities) == set(version.class_names)
        assert math.isclose(sum(prediction.probabilities.values()), 1.0, abs_tol=1e-3)
        assert prediction.started_at and prediction.finished_at and prediction.inference_ms is not None
        assert prediction.model_version == version
    assert log.count("Loaded model version") == 1, log[-5000:]
