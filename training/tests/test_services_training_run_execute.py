"""A whole run in this process on the synthetic data set: the pipeline, progress, log, registry, gate."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image

from diagnosis import services as diagnosis_services
from diagnosis.models import ModelVersion
from diagnosis.tests.factories import PatientFactory, ReviewFactory, ScanFactory
from training import services
from training.models import LockedTestEvaluation, LockedTestSet, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def start(user, **kwargs) -> TrainingRun:
    """Queue a run; executed here, so the queued message is never consumed (the run would be over anyway)."""
    return services.training_run_start(requested_by=user, **kwargs)


def test_a_run_trains_registers_an_inactive_version_and_compares_it_with_the_active_one(
    training_settings, admin_user, organization, tiny_model_version
):
    run = start(admin_user, overrides={"epochs": 2}, organization=organization)

    services.training_run_execute(run_id=run.pk, worker_node="test@here", worker_pid=1)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.failure_reason
    assert not run.is_current and run.finished_at and run.stage == "done"
    assert (run.epoch, run.epochs) == (2, 2)
    assert [h["epoch"] for h in run.history] == [1, 2]
    assert {"loss", "val_loss", "val_accuracy", "val_macro_f1", "seconds"} <= set(run.history[-1])
    assert run.eta_seconds is None
    assert {"test", "locked_test", "epoch"} <= set(run.metrics)

    version = run.model_version
    assert version is not None and not version.is_active
    assert ModelVersion.objects.get(is_active=True) == tiny_model_version  # the active model is untouched
    path = Path(training_settings.KIDNEYWEB_MODELS_DIR) / f"{version.name}.keras"
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert version.metrics["test_series_split"]["macro_f1"] == pytest.approx(run.metrics["test"]["macro_f1"])
    assert version.card["training"]["params"]["train"]["epochs"] == 2
    assert version.card["data"]["manifest_sha256"] == run.data_manifest_sha256 and len(run.data_manifest_sha256) == 64
    assert version.card["data"]["selection"] == "developer"
    assert len(version.sha256) == 64

    test_set = LockedTestSet.objects.get()
    assert run.locked_test_set == test_set
    assert {r["label"] for r in test_set.records} == {"Cyst", "Normal", "Stone", "Tumor"}
    # Both models were scored on the locked test series: the gate can judge at once.
    assert LockedTestEvaluation.objects.filter(test_set=test_set).count() == 2
    assert run.gate["test_set"]["compared"] == len(test_set.records)
    assert run.gate["candidate"]["images"] == run.gate["baseline"]["images"] == len(test_set.records)
    # The locked test series is never trained on.
    assert not {r["pixel"] for r in test_set.records} & set(run.training_image_hashes)

    assert "Stage: train" in run.log and "epoch 2/2" in run.log and "Locked test set" in run.log
    assert not services.run_work_dir(run.pk).exists()  # scratch copies do not pile up


def test_a_run_on_data_too_small_to_split_fails_with_its_reason_and_registers_nothing(
    training_settings, admin_user, tmp_path, tiny_model_version
):
    small = tmp_path / "small"
    for label in ("Cyst", "Normal"):
        (small / label).mkdir(parents=True)
        Image.fromarray(np.full((32, 32), 80, np.uint8)).save(small / label / f"{label}-1.png")
    training_settings.KIDNEYWEB_TRAINING_DATA_DIR = str(small)
    run = start(admin_user)

    services.training_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED
    assert "too few series" in run.failure_reason and "locked test set" in run.failure_reason
    assert not run.is_current and run.model_version is None
    assert list(ModelVersion.objects.all()) == [tiny_model_version] and tiny_model_version.is_active
    assert not list(Path(training_settings.KIDNEYWEB_MODELS_DIR).glob("*.keras"))
    assert not services.run_work_dir(run.pk).exists()


def test_a_missing_data_set_fails_the_run_with_where_it_was_looked_for(training_settings, admin_user, tmp_path):
    training_settings.KIDNEYWEB_TRAINING_DATA_DIR = str(tmp_path / "nowhere")
    run = start(admin_user)

    services.training_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED
    assert "nowhere" in run.failure_reason and "KIDNEY_DATA_DIR" in run.failure_reason


def test_cancelling_a_running_run_stops_it_within_one_epoch(training_settings, admin_user, tiny_model_version):
    run = start(admin_user, overrides={"epochs": 200, "early_stopping_patience": 200})
    cancelled_at = {}

    def cancel_after_the_first_epoch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            current = TrainingRun.objects.get(pk=run.pk)
            if current.epoch >= 1:
                cancelled_at["epoch"] = current.epoch
                services.training_run_cancel(run=current)
                return
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_after_the_first_epoch)
    canceller.start()
    try:
        services.training_run_execute(run_id=run.pk)
    finally:
        canceller.join()

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED and not run.is_current
    assert "Cancelled by an administrator" in run.failure_reason
    assert run.epoch <= cancelled_at["epoch"] + 1 < 200
    assert run.model_version is None
    assert not list(Path(training_settings.KIDNEYWEB_MODELS_DIR).glob("*.keras"))
    assert ModelVersion.objects.get(is_active=True) == tiny_model_version


def _slice_png(label: str, seed: int) -> bytes:
    import io

    from mlcore.synthetic import synthetic_slice

    buffer = io.BytesIO()
    Image.fromarray(synthetic_slice(label, np.random.default_rng(seed), 64, patient=seed % 3)).save(buffer, "PNG")
    return buffer.getvalue()


def _reviewed_scan(organization, label: str, data: bytes):
    scan = ScanFactory(patient=PatientFactory(organization=organization), image=ContentFile(data, name="s.png"),
                       width=64, height=64)
    return ReviewFactory(prediction__scan=scan, prediction__label="Normal", label=label)


def test_both_adds_the_reviewed_scans_to_training_but_never_a_locked_test_image(
    training_settings, admin_user, organization, synthetic_data
):
    for seed, label in enumerate(["Stone", "Cyst", "Tumor"]):
        _reviewed_scan(organization, label, _slice_png(label, 100 + seed))
    test_set = services.locked_test_set_current()
    test_image = synthetic_data / test_set.records[0]["path"]
    # A clinician uploaded (and reviewed) a slice that is in the locked test series.
    _reviewed_scan(organization, test_set.records[0]["label"], test_image.read_bytes())
    run = start(admin_user, data="both", organization=organization)

    services.training_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.failure_reason
    assert "Left out 1 reviewed scans" in run.log
    assert "Reviewed scans of St. Elsewhere for training: 3" in run.log
    assert test_set.records[0]["pixel"] not in run.training_image_hashes
    assert run.model_version.card["data"]["selection"] == "both"
    assert run.model_version.card["data"]["extra_images"] == 3
    assert run.gate["test_set"]["left_out"] == 0


def test_reviewed_alone_with_too_few_scans_fails_with_its_reason(training_settings, admin_user, organization):
    _reviewed_scan(organization, "Stone", _slice_png("Stone", 7))
    run = start(admin_user, data="reviewed", organization=organization)

    services.training_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED
    assert "split is empty" in run.failure_reason


def test_a_second_delivery_does_nothing_and_the_same_data_gives_the_same_hashes(training_settings, admin_user):
    first = start(admin_user)
    services.training_run_execute(run_id=first.pk)
    first.refresh_from_db()
    finished = (first.status, first.finished_at, first.model_version_id)
    assert first.status == TrainingRun.Status.SUCCEEDED, first.failure_reason

    services.training_run_execute(run_id=first.pk)
    first.refresh_from_db()
    assert (first.status, first.finished_at, first.model_version_id) == finished
    assert ModelVersion.objects.count() == 1

    second = start(admin_user)
    services.training_run_execute(run_id=second.pk)
    second.refresh_from_db()
    assert second.status == TrainingRun.Status.SUCCEEDED, second.failure_reason
    assert second.data_manifest_sha256 == first.data_manifest_sha256
    assert LockedTestSet.objects.count() == 1
    assert second.model_version != first.model_version


def test_a_run_is_logged_to_mlflow_with_its_parameters_epochs_and_scores(
    training_settings, admin_user, tmp_path, monkeypatch
):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # Made here so its artifacts land in this test's folder, not in the project's mlruns/.
    mlflow.create_experiment("kidneyweb", artifact_location=(tmp_path / "artifacts").as_uri())
    training_settings.KIDNEYWEB_TRAINING_TRACK = True
    run = start(admin_user, overrides={"epochs": 2, "learning_rate": 0.001})

    services.training_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.failure_reason
    assert run.mlflow_run_id
    logged = mlflow.get_run(run.mlflow_run_id)
    assert logged.data.params["train.epochs"] == "2" and logged.data.params["train.learning_rate"] == "0.001"
    assert logged.data.metrics["test_macro_f1"] == pytest.approx(run.metrics["test"]["macro_f1"])
    history = mlflow.MlflowClient().get_metric_history(run.mlflow_run_id, "val_macro_f1")
    assert [m.step for m in history] == [1, 2]
    assert logged.info.run_name == run.model_version.name


@pytest.mark.parametrize("error, expected", [
    (MemoryError(), "ran out of memory during train. Try a smaller batch_size or image_size"),
    (type("ResourceExhaustedError", (Exception,), {})("OOM when allocating tensor"), "ran out of memory"),
    (ValueError("the test split is empty"), "The data could not be used during train: the test split is empty"),
])
def test_failures_are_described_for_people(error, expected):
    from training.services.execution import describe_failure

    assert expected in describe_failure(error, "train")


def test_a_run_past_its_time_limit_says_so(settings):
    from celery.exceptions import SoftTimeLimitExceeded

    from training.services.execution import describe_failure

    settings.KIDNEYWEB_TRAINING_TIME_LIMIT_SECONDS = 60
    assert "longer than the time limit (60 s)" in describe_failure(SoftTimeLimitExceeded(), "train")
