"""Filing a slice uploaded for the wrong patient under the right one: the wrong scan is withdrawn and kept
where it was; the slice becomes a new scan of the right patient, diagnosed afresh, that names its origin."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings

from diagnosis import selectors, services
from diagnosis.models import Prediction, Scan, ScanWithdrawal, WebhookDelivery

from .factories import DonePredictionFactory, PatientFactory, ReviewFactory, ScanFactory


@pytest.fixture
def scan(organization, clinician):
    scan = ScanFactory(patient=PatientFactory(organization=organization, name="Wrong Person"), uploaded_by=clinician,
                       original_filename="kidney-17.png")
    ReviewFactory(prediction=DonePredictionFactory(scan=scan, label="Cyst"), label="Cyst", reviewed_by=clinician)
    return scan


@pytest.fixture
def right_patient(organization):
    return PatientFactory(organization=organization, name="Right Person")


def _stored_bytes(scan: Scan) -> bytes:
    with scan.image.open("rb") as handle:
        return handle.read()


def test_refiling_withdraws_the_scan_and_files_its_slice_for_the_right_patient(
        scan, right_patient, clinician, active_model_version):
    copy = services.scan_refile(scan=scan, patient=right_patient, user=clinician, reason=" uploaded for the  wrong patient")

    scan.refresh_from_db()
    assert scan.is_withdrawn and scan.withdrawal_reason == "uploaded for the wrong patient"
    assert scan.withdrawn_by == clinician and scan.patient.name == "Wrong Person"
    assert scan.predictions.count() == 1 and scan.reviews.count() == 1  # kept for the record
    assert copy.patient == right_patient and copy.refiled_from == scan and copy.uploaded_by == clinician
    assert _stored_bytes(copy) == _stored_bytes(scan) and copy.sha256 == scan.sha256
    assert copy.image.name != scan.image.name and copy.original_filename == "kidney-17.png"
    # Diagnosed afresh with the active model; the reading of the wrong patient's scan does not move.
    assert copy.latest_prediction.status == Prediction.Status.QUEUED
    assert copy.latest_prediction.model_version == active_model_version and not copy.reviews.exists()
    assert [s.pk for s in selectors.worklist(user=clinician)] == [copy.pk]


def test_an_already_withdrawn_scan_is_filed_without_a_second_withdrawal(
        withdrawn_scan, right_patient, clinician, active_model_version):
    copy = services.scan_refile(scan=withdrawn_scan, patient=right_patient, user=clinician)

    withdrawn_scan.refresh_from_db()
    assert copy.refiled_from == withdrawn_scan and withdrawn_scan.withdrawal_reason == "wrong patient"
    assert ScanWithdrawal.objects.filter(scan=withdrawn_scan).count() == 1


def test_a_scan_not_yet_withdrawn_needs_a_reason_and_nothing_changes_without_one(scan, right_patient, clinician,
                                                                                 active_model_version):
    with pytest.raises(ValidationError, match="Say why the scan is withdrawn"):
        services.scan_refile(scan=scan, patient=right_patient, user=clinician, reason="  ")

    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and not right_patient.scans.exists()


def test_the_slice_is_filed_once_while_that_filing_stands(withdrawn_scan, right_patient, organization, clinician,
                                                          active_model_version):
    first = services.scan_refile(scan=withdrawn_scan, patient=right_patient, user=clinician)
    third_patient = PatientFactory(organization=organization, name="Third Person")

    with pytest.raises(ValidationError, match=rf"already filed for Right Person as scan #{first.pk}"):
        services.scan_refile(scan=withdrawn_scan, patient=third_patient, user=clinician)
    assert not third_patient.scans.exists()

    # The filing was wrong too: that scan is filed on, and the chain stays readable.
    second = services.scan_refile(scan=first, patient=third_patient, user=clinician, reason="still the wrong patient")
    assert second.refiled_from == first and first.refiled_from == withdrawn_scan
    assert Scan.objects.get(pk=first.pk).is_withdrawn


def test_refused_when_the_right_patient_already_has_the_slice(scan, right_patient, clinician, active_model_version):
    again = ScanFactory(patient=right_patient, uploaded_by=clinician, sha256=scan.sha256)  # the same slice

    with pytest.raises(ValidationError, match=rf"Right Person already has this slice as scan #{again.pk}.*without filing"):
        services.scan_refile(scan=scan, patient=right_patient, user=clinician, reason="wrong patient")

    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and right_patient.scans.count() == 1



def test_refused_when_the_right_patient_has_the_same_dicom_instance_with_other_pixels(
        scan, right_patient, clinician, active_model_version):
    Scan.objects.filter(pk=scan.pk).update(dicom_instance_uid="1.2.826.0.1.3680043.8.498.32")
    scan.refresh_from_db()
    again = ScanFactory(patient=right_patient, uploaded_by=clinician, dicom_instance_uid=scan.dicom_instance_uid)

    with pytest.raises(ValidationError, match=rf"Right Person already has this slice as scan #{again.pk}"):
        services.scan_refile(scan=scan, patient=right_patient, user=clinician, reason="wrong patient")

    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and right_patient.scans.count() == 1

def test_refused_for_the_scans_own_patient_and_a_patient_of_another_organization(
        scan, clinician, other_organization, active_model_version):
    with pytest.raises(ValidationError, match="already Wrong Person's"):
        services.scan_refile(scan=scan, patient=scan.patient, user=clinician, reason="wrong patient")
    outsider = PatientFactory(organization=other_organization)
    with pytest.raises(ValidationError, match="No such patient in your organization"):
        services.scan_refile(scan=scan, patient=outsider, user=clinician, reason="wrong patient")

    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and not outsider.scans.exists()


def test_only_the_uploader_or_an_administrator_may_refile(scan, right_patient, nurse, boss, other_clinician,
                                                         active_model_version):
    with pytest.raises(PermissionDenied, match="Only the clinician who uploaded this scan or an administrator"):
        services.scan_refile(scan=scan, patient=right_patient, user=nurse, reason="wrong patient")
    with pytest.raises(ValidationError, match="No such scan in your organization"):
        services.scan_refile(scan=scan, patient=right_patient, user=other_clinician, reason="wrong patient")
    assert not right_patient.scans.exists()

    copy = services.scan_refile(scan=scan, patient=right_patient, user=boss, reason="wrong patient")
    assert copy.uploaded_by == boss and Scan.objects.get(pk=scan.pk).withdrawn_by == boss


def test_without_an_active_model_nothing_is_withdrawn_or_stored(scan, right_patient, clinician):
    with pytest.raises(services.NoActiveModelVersion):
        services.scan_refile(scan=scan, patient=right_patient, user=clinician, reason="wrong patient")

    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and not right_patient.scans.exists()


def test_an_unreadable_stored_image_refuses_with_its_reason_and_changes_nothing(scan, right_patient, clinician,
                                                                               active_model_version):
    scan.image.storage.delete(scan.image.name)

    with pytest.raises(ValidationError, match="stored image could not be read, so nothing was filed or withdrawn"):
        services.scan_refile(scan=scan, patient=right_patient, user=clinician, reason="wrong patient")

    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and not right_patient.scans.exists()


def test_the_withdrawal_notification_names_the_new_scan(scan, right_patient, clinician, boss, organization,
                                                        active_model_version):
    services.webhook_set(organization=organization, url="https://his.example/hook", by=boss)

    copy = services.scan_refile(scan=scan, patient=right_patient, user=clinician, reason="wrong patient")

    delivery = WebhookDelivery.objects.get(event="scan.withdrawn")
    assert delivery.payload["scan"]["id"] == scan.pk and delivery.payload["reason"] == "wrong patient"
    assert delivery.payload["refiled_as"]["id"] == copy.pk and delivery.payload["refiled_as"]["patient"] == right_patient.pk


def test_a_refiled_scan_is_not_restored_while_its_filing_stands(withdrawn_scan, right_patient, clinician,
                                                                active_model_version):
    copy = services.scan_refile(scan=withdrawn_scan, patient=right_patient, user=clinician)

    with pytest.raises(ValidationError, match=rf"filed for Right Person as scan #{copy.pk}.*two patients"):
        services.scan_restore(scan=withdrawn_scan, user=clinician, reason="was right after all")
    assert Scan.objects.get(pk=withdrawn_scan.pk).is_withdrawn

    services.scan_withdraw(scan=copy, user=clinician, reason="the first patient was right")
    services.scan_restore(scan=withdrawn_scan, user=clinician, reason="was right after all")
    assert not Scan.objects.get(pk=withdrawn_scan.pk).is_withdrawn


def _dicom_scan(patient, clinician, header_id: str) -> Scan:
    import numpy as np
    from django.core.files.uploadedfile import SimpleUploadedFile

    from mlcore.synthetic import dicom_bytes

    pixels = np.tile(np.linspace(0, 2000, 32).astype(np.uint16), (24, 1))
    upload = SimpleUploadedFile("IM0001.dcm", dicom_bytes(pixels, patient_id=header_id), content_type="application/dicom")
    return services.scan_create(patient=patient, file=upload, uploaded_by=clinician)


def test_a_dicom_slice_is_filed_only_for_the_patient_its_header_names(organization, clinician, active_model_version):
    first = PatientFactory(organization=organization, name="First Person", mrn="00123456")
    named = PatientFactory(organization=organization, name="Named Person", mrn="777")
    other = PatientFactory(organization=organization, name="Other Person", mrn="888")
    with override_settings(KIDNEYWEB_DICOM_PATIENT_ID_CHECK=False):  # how a slice naming 777 reached First Person
        scan = _dicom_scan(first, clinician, header_id="777")
    assert scan.dicom_patient_id == "777" and scan.format == "PNG"

    with pytest.raises(ValidationError, match="header names patient ID '777', but Other Person's MRN is '888'"):
        services.scan_refile(scan=scan, patient=other, user=clinician, reason="wrong patient")
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and not other.scans.exists()

    copy = services.scan_refile(scan=scan, patient=named, user=clinician, reason="wrong patient")
    assert copy.dicom_patient_id == "777"  # carried, so that filing it on is held to the same rule


def test_a_dicom_slice_whose_header_named_the_first_patient_stays_theirs(organization, clinician, active_model_version):
    first = PatientFactory(organization=organization, mrn="00123456")
    right = PatientFactory(organization=organization, name="Right Person", mrn="R-2")
    scan = _dicom_scan(first, clinician, header_id="123456")

    with pytest.raises(ValidationError, match="cannot be filed for them. If the image itself is wrong, withdraw it"):
        services.scan_refile(scan=scan, patient=right, user=clinician, reason="wrong patient")

    with override_settings(KIDNEYWEB_DICOM_PATIENT_ID_CHECK=False):  # where the archive's IDs are not these MRNs
        assert services.scan_refile(scan=scan, patient=right, user=clinician, reason="wrong patient").patient == right
