"""Withdrawing a scan entered in error: kept for the record with who, when and why; out of the worklist,
the agreement figures and training; no new diagnosis or review; only its uploader or an administrator."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from diagnosis import selectors, services
from diagnosis.models import Prediction, Scan

from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ReviewFactory, ScanFactory, image_bytes


@pytest.fixture
def scan(organization, clinician):
    return ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)


def test_withdrawing_keeps_the_scan_with_who_when_and_why(scan, clinician):
    DonePredictionFactory(scan=scan)
    ReviewFactory(prediction=scan.predictions.get(), reviewed_by=clinician)

    services.scan_withdraw(scan=scan, user=clinician, reason="  uploaded for the   wrong patient ")

    scan.refresh_from_db()
    assert scan.is_withdrawn and scan.withdrawn_by == clinician and scan.withdrawal_reason == "uploaded for the wrong patient"
    assert scan.predictions.count() == 1 and scan.reviews.count() == 1 and scan.image.storage.exists(scan.image.name)
    assert selectors.scan_get(user=clinician, pk=scan.pk) == scan  # still readable, for the record


def test_a_withdrawn_scan_leaves_the_worklist_the_agreement_figures_and_training(scan, clinician, organization):
    reviewed = ScanFactory(patient=scan.patient, uploaded_by=clinician)
    ReviewFactory(prediction=DonePredictionFactory(scan=reviewed, label="Stone"), label="Cyst", reviewed_by=clinician)
    DonePredictionFactory(scan=scan)
    assert [s.pk for s in selectors.worklist(user=clinician)] == [scan.pk]
    assert selectors.agreement_by_class(organization=organization)[0].reviewed == 1

    services.scan_withdraw(scan=scan, user=clinician, reason="wrong image")
    services.scan_withdraw(scan=reviewed, user=clinician, reason="wrong patient")

    assert list(selectors.worklist(user=clinician)) == []
    assert list(selectors.reviewed_scans(organization=organization)) == []
    assert all(row.reviewed == 0 for row in selectors.agreement_by_class(organization=organization))


def test_a_withdrawn_scan_takes_no_new_diagnosis_or_review(scan, clinician, active_model_version):
    prediction = DonePredictionFactory(scan=scan)
    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")

    with pytest.raises(ValidationError, match="withdrawn as entered in error by alice on .*: wrong patient"):
        services.prediction_create(scan=scan)
    with pytest.raises(ValidationError, match="withdrawn as entered in error"):
        services.review_create(scan=scan, user=clinician, label="Stone", prediction_id=prediction.pk)
    with pytest.raises(ValidationError, match="already|withdrawn as entered in error"):
        services.scan_withdraw(scan=scan, user=clinician, reason="again")
    assert scan.predictions.count() == 1 and not scan.reviews.exists()


def test_a_pending_diagnosis_is_failed_and_a_late_worker_leaves_it_so(scan, clinician):
    prediction = PredictionFactory(scan=scan, status=Prediction.Status.QUEUED)

    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")

    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.FAILED
    assert prediction.failure_reason == "Not diagnosed: the scan was withdrawn as entered in error."
    assert services.prediction_run(prediction_id=prediction.pk).status == Prediction.Status.FAILED


def test_only_the_uploader_or_an_administrator_may_withdraw(scan, nurse, boss, other_clinician):
    with pytest.raises(PermissionDenied, match="Only the clinician who uploaded this scan or an administrator"):
        services.scan_withdraw(scan=scan, user=nurse, reason="wrong patient")
    with pytest.raises(ValidationError, match="No such scan in your organization"):
        services.scan_withdraw(scan=scan, user=other_clinician, reason="wrong patient")
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn

    services.scan_withdraw(scan=scan, user=boss, reason="wrong patient")
    assert Scan.objects.get(pk=scan.pk).withdrawn_by == boss


@pytest.mark.parametrize("reason, message", [("   ", "Say why the scan is withdrawn"), ("x" * 201, "the limit is 200")])
def test_a_reason_is_required_and_kept_short(scan, clinician, reason, message):
    with pytest.raises(ValidationError, match=message):
        services.scan_withdraw(scan=scan, user=clinician, reason=reason)
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn


def test_the_same_slice_can_be_uploaded_again_for_the_patient_once_withdrawn(organization, clinician, active_model_version):
    patient = PatientFactory(organization=organization)
    first = services.scan_create(patient=patient, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)
    services.scan_withdraw(scan=first, user=clinician, reason="uploaded twice by mistake, then withdrawn by mistake")

    again = services.scan_create(patient=patient, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)

    assert again.pk != first.pk and not again.is_withdrawn
