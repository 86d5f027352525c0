"""Real worker processes: a diagnosis never waits behind a training run, cancellation, hot reload of a
promoted model in a running worker, and runs whose worker is killed.

Runs against whatever the settings point at: SQLite and the filesystem broker by default, PostgreSQL
and Redis when DATABASE_URL and REDIS_URL are set. Everything uses tiny synthetic models and data.
"""

from __future__ import annotations

import io
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from diagnosis import services as diagnosis_services
from diagnosis.models import Prediction, Scan
from diagnosis.tests import brokerq
from diagnosis.tests.factories import CLASS_NAMES, PatientFactory
from training.models import ModelPromotion, TrainingRun

from .factories import TrainingRunFactory
from .workers import running_worker, start_worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LONG_RUN = {"epochs": 300, "early_stopping_patience": 300}


@pytest.fixture
def queues():
    for name in ("training", "inference", "celery"):
        brokerq.drain(name)
    yield
    for name in ("training", "inference", "celery"):
        brokerq.drain(name)


@pytest.fixture
def worker_env(tmp_path, synthetic_data, tiny_params_file, training_settings) -> dict[str, str]:
    """What the workers need to train on the synthetic set into this test's folders."""
    return {
        "KIDNEYWEB_TRAINING_PARAMS": str(tiny_params_file),
        "KIDNEY_DATA_DIR": str(synthetic_data),
        "KIDNEYWEB_MODELS_DIR": str(training_settings.KIDNEYWEB_MODELS_DIR),
        "KIDNEYWEB_TRAINING_DIR": str(training_settings.KIDNEYWEB_TRAINING_DIR),
        "KIDNEYWEB_TRAINING_TRACK": "0",
        "KIDNEYWEB_TRAINING_HEARTBEAT_SECONDS": "1",
    }


@pytest.fixture(scope="session")
def second_tiny_model_path(tmp_path_factory) -> Path:
    """Another small untrained model: other weights, so other probabilities for the same slice."""
    from mlcore.card import ModelCard, write_card
    from mlcore.model import build_model

    path = tmp_path_factory.mktemp("tiny-model-2") / "tiny-resnet-2.keras"
    build_model(class_names=CLASS_NAMES, image_size=32, augment=False, seed=7).save(path)
    write_card(path, ModelCard(name="tiny-resnet-2", architecture="resnet_small", classes=tuple(CLASS_NAMES),
                               input_size=32, created="2025-01-02T00:00:00Z", metrics={"macro_f1": 0.0}))
    return path


def slice_png(seed: int) -> bytes:
    from mlcore.synthetic import synthetic_slice

    buffer = io.BytesIO()
    Image.fromarray(synthetic_slice("Stone", np.random.default_rng(seed), 64, patient=seed % 3)).save(buffer, "PNG")
    return buffer.getvalue()


def upload(patient, user, seed: int) -> Scan:
    return diagnosis_services.scan_create(patient=patient, file=ContentFile(slice_png(seed), name="slice.png"),
                                          uploaded_by=user)


def final_prediction(prediction_id: int, workers, timeout: float = 120) -> Prediction:
    return wait_for(lambda: Prediction.objects.filter(pk=prediction_id, status__in=["done", "failed"]).first(),
                    timeout=timeout, workers=workers, what=f"prediction {prediction_id}")


def run_in(run_id: int, *statuses: str) -> TrainingRun | None:
    return TrainingRun.objects.filter(pk=run_id, status__in=statuses).first()


def test_a_diagnosis_completes_while_a_training_run_is_running_and_cancel_stops_the_run_within_an_epoch(
    queues, worker_env, tmp_path, admin_api, clinician, organization, tiny_model_version
):
    with running_worker(queues="training", log_path=tmp_path / "training.log", env=worker_env) as trainer, \
         running_worker(queues="inference", log_path=tmp_path / "inference.log", env=worker_env) as inferrer:
        workers = (trainer, inferrer)
        response = admin_api.post("/api/v1/training-runs/", {"params": LONG_RUN, "data": "developer"}, format="json")
        assert response.status_code == 202, response.content
        run_id = response.json()["id"]
        wait_for(lambda: TrainingRun.objects.filter(pk=run_id, status="running", epoch__gte=1).first(),
                 timeout=180, workers=workers, what="the run's first epoch")

        scan = upload(PatientFactory(organization=organization), clinician, seed=1)
        prediction = final_prediction(scan.latest_prediction.pk, workers)

        assert prediction.status == Prediction.Status.DONE, prediction.failure_reason
        run = TrainingRun.objects.get(pk=run_id)
        assert run.status == TrainingRun.Status.RUNNING, "the diagnosis should finish while the run trains"
        assert prediction.finished_at < timezone.now() and run.epoch < LONG_RUN["epochs"]

        epoch_at_cancel = run.epoch
        assert admin_api.post(f"/api/v1/training-runs/{run_id}/cancel/").status_code == 202
        run = wait_for(lambda: run_in(run_id, "cancelled", "failed", "succeeded"), timeout=60, workers=workers,
                       what="the cancellation")
        assert run.status == TrainingRun.Status.CANCELLED, run.failure_reason
        # The request is read at each epoch end: at most the epoch under way when it came, and the next.
        assert run.epoch <= epoch_at_cancel + 2
        assert run.model_version is None

        body = admin_api.get(f"/api/v1/training-runs/{run_id}/").json()
        assert body["status"] == "cancelled" and body["epochs"] == LONG_RUN["epochs"]
        assert "Stage: train" in admin_api.get(f"/api/v1/training-runs/{run_id}/log/").content.decode()


def test_a_running_worker_diagnoses_with_a_newly_promoted_version_and_earlier_diagnoses_keep_theirs(
    queues, worker_env, tmp_path, admin_api, client, clinician, organization, tiny_model_version,
    second_tiny_model_path
):
    from mlcore.inference import Classifier

    first = tiny_model_version
    second = diagnosis_services.model_version_register(path=second_tiny_model_path)
    patient = PatientFactory(organization=organization)
    with running_worker(queues="inference", log_path=tmp_path / "inference.log", env=worker_env) as worker:
        before = final_prediction(upload(patient, clinician, seed=2).latest_prediction.pk, (worker,))
        assert before.status == "done" and before.model_version == first

        response = admin_api.post(f"/api/v1/model-versions/{second.pk}/promote/",
                                  {"reason": "Test of hot reload: not evaluated on purpose."}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["active"] is True

        after = final_prediction(upload(patient, clinician, seed=3).latest_prediction.pk, (worker,))
        assert after.status == "done" and after.model_version == second
        expected = Classifier.load(second_tiny_model_path).predict([after.scan.image.open("rb").read()])[0]
        assert after.probabilities == pytest.approx(expected.probabilities, abs=1e-5)
        other = Classifier.load(first.path).predict([after.scan.image.open("rb").read()])[0]
        assert other.probabilities != pytest.approx(expected.probabilities, abs=1e-5)

        # "Diagnose again" adds a diagnosis by the new version; the first one stays as it was.
        client.force_login(clinician)
        client.post(reverse("diagnosis:scan_rerun", args=[before.scan_id]))
        rerun = final_prediction(Prediction.objects.filter(scan=before.scan_id).latest("queued_at").pk, (worker,))
        assert rerun.pk != before.pk and rerun.model_version == second and rerun.status == "done"
        kept = Prediction.objects.get(pk=before.pk)
        assert (kept.model_version, kept.label, kept.probabilities) == (first, before.label, before.probabilities)

        response = admin_api.post(f"/api/v1/model-versions/{first.pk}/rollback/", {"reason": "back"}, format="json")
        assert response.status_code == 200, response.content
        back = final_prediction(upload(patient, clinician, seed=4).latest_prediction.pk, (worker,))
        assert back.model_version == first

        worker.assert_alive()  # one process all along: no restart
        log = worker.log()
        assert log.count("Loaded model version") == 2, log[-4000:]
        assert f"Loaded model version {second.name}" in log
    kinds = list(ModelPromotion.objects.order_by("created_at").values_list("kind", "gate_overridden"))
    assert kinds == [("promote", True), ("rollback", False)]


def test_a_run_whose_pool_process_is_killed_ends_failed_and_a_new_run_can_start(
    queues, worker_env, tmp_path, admin_api
):
    with running_worker(queues="training", log_path=tmp_path / "training.log", env=worker_env, pool="prefork",
                        extra=("--max-tasks-per-child", "1")) as trainer:
        run_id = admin_api.post("/api/v1/training-runs/", {"params": LONG_RUN}, format="json").json()["id"]
        run = wait_for(lambda: TrainingRun.objects.filter(pk=run_id, status="running", epoch__gte=1).first(),
                       timeout=180, workers=(trainer,), what="the run's first epoch")
        assert run.worker_pid != trainer.process.pid  # the pool process, not the worker's main process

        os.kill(run.worker_pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would

        run = wait_for(lambda: run_in(run_id, "failed", "cancelled", "succeeded"), timeout=60, workers=(trainer,),
                       what="the run to end")
        assert run.status == TrainingRun.Status.FAILED
        assert "worker process" in run.failure_reason and "memory" in run.failure_reason
        assert not run.is_current and run.model_version is None
        trainer.assert_alive()
        assert admin_api.post("/api/v1/training-runs/", {"params": {"epochs": 1}}, format="json").status_code == 202


def test_a_run_whose_worker_is_killed_is_failed_when_the_worker_starts_again(
    queues, worker_env, tmp_path, admin_api
):
    node = f"training-killed-{os.getpid()}@%h"
    trainer = start_worker(queues="training", log_path=tmp_path / "training.log", env=worker_env, node=node)
    try:
        run_id = admin_api.post("/api/v1/training-runs/", {"params": LONG_RUN}, format="json").json()["id"]
        wait_for(lambda: TrainingRun.objects.filter(pk=run_id, status="running", epoch__gte=1).first(),
                 timeout=180, workers=(trainer,), what="the run's first epoch")
    finally:
        trainer.kill()
    time.sleep(2)
    assert TrainingRun.objects.get(pk=run_id).status == "running"  # nobody has noticed yet

    with running_worker(queues="training", log_path=tmp_path / "training-again.log", env=worker_env,
                        node=node) as again:
        run = wait_for(lambda: run_in(run_id, "failed"), timeout=60, workers=(again,), what="the stale run to fail")
    assert "stopped during the run" in run.failure_reason and "restarted" in run.failure_reason
    assert not run.is_current


def test_beat_in_the_inference_worker_fails_a_run_whose_worker_died_without_anyone_looking(queues, worker_env, tmp_path):
    """No page or API call lists the runs here: only the scheduled sweep can notice."""
    env = {**worker_env, "KIDNEYWEB_TRAINING_SWEEP_SECONDS": "1", "KIDNEYWEB_TRAINING_STALE_SECONDS": "60"}
    with running_worker(queues="inference,celery", log_path=tmp_path / "beat.log", env=env,
                        extra=("--beat", "--schedule", str(tmp_path / "celerybeat-schedule"))) as worker:
        # Only after the worker is up: its start-up check would fail the run too, without beat.
        wait_for(lambda: " ready." in worker.log(), timeout=60, workers=(worker,), what="the worker to start")
        silent_since = timezone.now() - timedelta(seconds=120)
        run = TrainingRunFactory(status="running", started_at=silent_since, heartbeat_at=silent_since,
                                 worker_node="training@gone-machine")
        failed = wait_for(lambda: run_in(run.pk, "failed"), timeout=60, workers=(worker,),
                          what="the scheduled sweep to fail the silent run")
    assert "No sign of life from its worker (training@gone-machine)" in failed.failure_reason
