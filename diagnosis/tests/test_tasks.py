"""predict_scan run in-process (Celery's apply) against a tiny real Keras model."""

import io
import math

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from diagnosis import services
from diagnosis.models import Prediction
from diagnosis.tasks import MAX_RETRIES, predict_scan

from .factories import CLASS_NAMES, PatientFactory, image_bytes


@pytest.fixture
def queued_prediction(organization, clinician, tiny_model_version):
    patient = PatientFactory(organization=organization)
    scan = services.scan_create(
        patient=patient, file=SimpleUploadedFile("s.jpg", image_bytes("JPEG", (96, 80))), uploaded_by=clinician
    )
    return scan.latest_prediction


def run(prediction, **options):
    return predict_scan.apply(args=[prediction.pk], **options)


def snapshot(prediction):
    prediction.refresh_from_db()
    return {f.name: getattr(prediction, f.name) for f in Prediction._meta.concrete_fields}


def test_the_task_stores_a_label_and_every_class_probability(queued_prediction):
    run(queued_prediction)

    queued_prediction.refresh_from_db()
    assert queued_prediction.status == Prediction.Status.DONE
    assert queued_prediction.label in CLASS_NAMES
    assert sorted(queued_prediction.probabilities) == sorted(CLASS_NAMES)
    assert math.isclose(sum(queued_prediction.probabilities.values()), 1.0, abs_tol=1e-4)
    assert queued_prediction.label == max(queued_prediction.probabilities, key=queued_prediction.probabilities.get)
    assert queued_prediction.started_at <= queued_prediction.finished_at
    assert queued_prediction.inference_ms is not None and queued_prediction.failure_reason == ""


def test_a_second_delivery_of_a_finished_task_changes_nothing(queued_prediction):
    run(queued_prediction)
    first = snapshot(queued_prediction)

    run(queued_prediction)

    assert snapshot(queued_prediction) == first


def test_a_failed_prediction_is_not_run_again_by_a_second_delivery(queued_prediction):
    services.prediction_fail(prediction_id=queued_prediction.pk, reason="stopped by a test")
    before = snapshot(queued_prediction)

    run(queued_prediction)

    assert snapshot(queued_prediction) == before


def test_a_prediction_left_running_by_a_lost_worker_is_run_again(queued_prediction):
    Prediction.objects.filter(pk=queued_prediction.pk).update(status=Prediction.Status.RUNNING)

    run(queued_prediction)

    queued_prediction.refresh_from_db()
    assert queued_prediction.status == Prediction.Status.DONE and queued_prediction.attempts == 1


def test_a_scan_whose_worker_died_on_every_attempt_is_given_up_with_the_reason(queued_prediction):
    # As left by six deliveries whose worker was killed (out of memory) before it could record anything.
    Prediction.objects.filter(pk=queued_prediction.pk).update(status=Prediction.Status.RUNNING,
                                                              attempts=services.MAX_ATTEMPTS)

    run(queued_prediction)

    queued_prediction.refresh_from_db()
    assert queued_prediction.status == Prediction.Status.FAILED and not queued_prediction.label
    assert queued_prediction.failure_reason.startswith(f"Gave up after {services.MAX_ATTEMPTS} attempts: the worker stopped")


def test_an_image_the_model_cannot_read_fails_with_the_reason(queued_prediction):
    # Valid at upload, damaged in storage afterwards.
    path = queued_prediction.scan.image.path
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n garbage")

    run(queued_prediction)

    queued_prediction.refresh_from_db()
    assert queued_prediction.status == Prediction.Status.FAILED
    assert "could not read the image" in queued_prediction.failure_reason
    assert queued_prediction.finished_at is not None and queued_prediction.label == ""


def test_a_missing_stored_image_is_retried_then_the_prediction_fails_with_the_reason(queued_prediction):
    queued_prediction.scan.image.storage.delete(queued_prediction.scan.image.name)

    result = run(queued_prediction)

    queued_prediction.refresh_from_db()
    assert queued_prediction.status == Prediction.Status.FAILED
    assert f"Gave up after {MAX_RETRIES + 1} attempts" in queued_prediction.failure_reason
    assert "stored image could not be read" in queued_prediction.failure_reason
    assert result.successful()


def test_a_model_file_changed_after_registration_fails_the_prediction(
    organization, clinician, copy_model, tmp_path
):
    path = copy_model("changing.keras")
    services.model_version_register(path=path, activate=True)
    with open(path, "ab") as handle:
        handle.write(b"tampered")
    scan = services.scan_create(
        patient=PatientFactory(organization=organization),
        file=SimpleUploadedFile("s.png", image_bytes()),
        uploaded_by=clinician,
    )

    run(scan.latest_prediction)

    prediction = scan.latest_prediction
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.FAILED
    assert "changed on disk" in prediction.failure_reason


def test_a_task_for_a_prediction_that_no_longer_exists_does_nothing(db):
    assert predict_scan.apply(args=[987654]).successful()


def test_an_image_plainly_not_a_ct_slice_is_flagged_out_of_scope_with_the_reason(organization, clinician, tiny_model_version):
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 0).save(buffer, format="PNG")
    scan = services.scan_create(
        patient=PatientFactory(organization=organization),
        file=SimpleUploadedFile("blank.png", buffer.getvalue()),
        uploaded_by=clinician,
    )

    run(scan.latest_prediction)

    prediction = Prediction.objects.get(scan=scan)
    assert prediction.status == Prediction.Status.DONE
    assert prediction.out_of_scope and prediction.out_of_scope_reason == "a blank image"


def test_an_out_of_scope_result_queues_a_judgement_of_its_organizations_uploads_once_it_commits(
    organization, clinician, tiny_model_version, django_capture_on_commit_callbacks
):
    from . import brokerq

    buffer = io.BytesIO()
    Image.new("L", (64, 64), 0).save(buffer, format="PNG")
    blank = services.scan_create(patient=PatientFactory(organization=organization),
                                 file=SimpleUploadedFile("blank.png", buffer.getvalue()), uploaded_by=clinician)
    usual = services.scan_create(patient=PatientFactory(organization=organization),
                                 file=SimpleUploadedFile("s.jpg", image_bytes("JPEG", (96, 80))), uploaded_by=clinician)
    brokerq.drain("celery")

    with django_capture_on_commit_callbacks(execute=True):
        run(usual.latest_prediction)
    assert not Prediction.objects.get(scan=usual).out_of_scope
    assert brokerq.drain("celery") == []  # an ordinary result waits for the hourly judgement
    with django_capture_on_commit_callbacks(execute=True):
        run(blank.latest_prediction)

    assert Prediction.objects.get(scan=blank).out_of_scope
    assert brokerq.drain("celery") == [{"task": "diagnosis.tasks.judge_inputs", "args": [],
                                        "kwargs": {"organization_id": organization.pk}}]
