import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from diagnosis import services
from diagnosis.models import Prediction, Scan

from .factories import PatientFactory, image_bytes
from .races import cross, require_postgresql


@pytest.fixture
def patient(organization):
    return PatientFactory(organization=organization)


def media_files() -> set[Path]:
    from django.conf import settings

    return {p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()}


def test_scan_create_stores_the_scan_under_a_server_name_with_the_content_extension(
    patient, clinician, active_model_version
):
    data = image_bytes("PNG", (80, 60))
    # PNG content behind a misleading JPEG name and a path-traversal attempt.
    upload = SimpleUploadedFile("../../etc/evil.jpg", data, content_type="image/jpeg")

    scan = services.scan_create(patient=patient, file=upload, uploaded_by=clinician)

    scan.refresh_from_db()
    assert scan.format == "PNG"
    assert (scan.width, scan.height) == (80, 60)
    assert scan.sha256 == hashlib.sha256(data).hexdigest()
    assert scan.original_filename == "evil.jpg"
    directory, name = scan.image.name.rsplit("/", 1)
    assert directory == f"scans/{patient.organization_id}"
    assert name.endswith(".png") and "evil" not in name and len(name) == 32 + 4
    with scan.image.open("rb") as handle:
        assert handle.read() == data


def test_scan_create_queues_a_prediction_with_the_active_model(patient, clinician, active_model_version):
    scan = services.scan_create(
        patient=patient, file=SimpleUploadedFile("s.jpg", image_bytes("JPEG")), uploaded_by=clinician
    )

    prediction = scan.latest_prediction
    assert prediction.status == Prediction.Status.QUEUED
    assert prediction.model_version == active_model_version


def test_the_task_is_sent_to_the_broker_only_when_the_transaction_commits(
    patient, clinician, active_model_version, inference_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        scan = services.scan_create(
            patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician
        )
    assert inference_queue.drain() == []  # nothing leaves before the commit

    for callback in callbacks:
        callback()

    messages = inference_queue.drain()
    assert messages == [
        {"task": "diagnosis.tasks.predict_scan", "args": [scan.latest_prediction.pk], "kwargs": {}}
    ]


def test_a_refused_upload_stores_and_queues_nothing(
    patient, clinician, active_model_version, django_capture_on_commit_callbacks
):
    before = media_files()
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ValidationError) as error:
        services.scan_create(
            patient=patient, file=SimpleUploadedFile("s.png", b"not an image at all"), uploaded_by=clinician
        )

    assert "image" in error.value.message_dict
    assert callbacks == []
    assert not Scan.objects.exists() and not Prediction.objects.exists()
    assert media_files() == before


def test_without_an_active_model_the_upload_is_refused_and_nothing_is_stored(patient, clinician):
    before = media_files()
    with pytest.raises(services.NoActiveModelVersion):
        services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician)

    assert not Scan.objects.exists()
    assert media_files() == before


def test_a_user_cannot_upload_for_another_organizations_patient(patient, other_clinician, active_model_version):
    with pytest.raises(ValidationError) as error:
        services.scan_create(
            patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=other_clinician
        )

    assert "patient" in error.value.message_dict
    assert not Scan.objects.exists()


def test_a_very_long_client_file_name_is_kept_only_truncated(patient, clinician, active_model_version):
    scan = services.scan_create(
        patient=patient, file=SimpleUploadedFile("x" * 300 + ".png", image_bytes()), uploaded_by=clinician
    )

    assert len(scan.original_filename) == 255


def test_prediction_create_adds_a_newer_prediction_that_becomes_the_latest(
    patient, clinician, active_model_version
):
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician)
    first = scan.latest_prediction
    services.prediction_fail(prediction_id=first.pk, reason="The worker ran out of memory")

    second = services.prediction_create(scan=scan)

    assert Scan.objects.get(pk=scan.pk).latest_prediction == second != first


@pytest.mark.parametrize("status", ["queued", "running"])
def test_prediction_create_refuses_while_the_newest_diagnosis_is_pending(patient, clinician, active_model_version,
                                                                         status):
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician)
    Prediction.objects.filter(scan=scan).update(status=status)

    with pytest.raises(services.DiagnosisPending, match=f"already {status}"):
        services.prediction_create(scan=scan)
    assert scan.predictions.count() == 1


def test_a_diagnosis_pending_for_longer_than_the_limit_can_be_asked_for_again(patient, clinician, active_model_version):
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician)
    long_ago = timezone.now() - services.RERUN_WHILE_PENDING_AFTER - timedelta(seconds=1)
    Prediction.objects.filter(scan=scan).update(queued_at=long_ago)

    second = services.prediction_create(scan=scan)

    assert Scan.objects.get(pk=scan.pk).latest_prediction == second


def test_when_the_broker_is_down_the_scan_stays_and_its_prediction_says_why(
    patient, clinician, active_model_version, broker_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes()), uploaded_by=clinician)

    prediction = Prediction.objects.get(scan=scan)
    assert Scan.objects.filter(pk=scan.pk).exists()
    assert prediction.status == Prediction.Status.FAILED
    assert "could not be queued (the task broker did not answer: OperationalError)" in prediction.failure_reason


def test_the_same_slice_uploaded_twice_for_a_patient_is_refused_naming_the_stored_scan(
        patient, clinician, active_model_version, organization):
    first = services.scan_create(patient=patient, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)

    with pytest.raises(ValidationError, match=f"already stored for this patient as scan {first.pk}"):
        services.scan_create(patient=patient, file=SimpleUploadedFile("again.png", image_bytes()), uploaded_by=clinician)
    assert Scan.objects.count() == 1

    other = PatientFactory(organization=organization)
    assert services.scan_create(patient=other, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)


def test_a_slice_stands_once_per_patient_in_the_database_itself_and_again_once_withdrawn(
        patient, clinician, active_model_version):
    from django.db import IntegrityError, transaction

    first = services.scan_create(patient=patient, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)
    copy = {field: getattr(first, field) for field in ("patient", "sha256", "width", "height", "format", "uploaded_by")}

    with pytest.raises(IntegrityError), transaction.atomic():
        Scan.objects.create(image="scans/copy.png", **copy)
    services.scan_withdraw(scan=first, user=clinician, reason="uploaded for the wrong patient")
    again = services.scan_create(patient=patient, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)

    assert Scan.objects.filter(sha256=first.sha256).count() == 2 and again.pk != first.pk


def test_two_sends_of_one_slice_that_cross_store_one_scan_and_answer_the_second_with_it(
        transactional_db, patient, clinician, active_model_version):
    """The second send checks before the first has committed, so only the constraint can stop it: it waits on
    the first's row, fails, and is answered as a duplicate naming the scan the first made."""
    require_postgresql()

    def send(name: str):
        return services.scan_create(patient=patient, file=SimpleUploadedFile(name, image_bytes()), uploaded_by=clinician)

    first, second = cross(lambda: send("a.png"), lambda: send("b.png"), waits_at="INSERT")

    assert Scan.objects.filter(patient=patient).count() == 1
    assert isinstance(second, ValidationError), second
    error = second.error_dict["image"][0]
    assert error.code == "already_stored" and error.params == {"scan": first.pk}
