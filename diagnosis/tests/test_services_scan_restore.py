"""Undoing a withdrawal made by mistake: the scan counts again, with the reason; both stay in its history;
refused while the same slice is on record again for the patient, or for someone who may not withdraw it."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from diagnosis import selectors, services
from diagnosis.models import ScanWithdrawal

from .factories import PatientFactory, ScanFactory, image_bytes
from .races import cross, require_postgresql


@pytest.fixture
def withdrawn(withdrawn_scan):
    return withdrawn_scan


def test_a_restored_scan_is_back_in_the_worklist_and_its_history_keeps_both_steps(withdrawn, clinician, boss):
    assert list(selectors.worklist(user=clinician)) == []

    services.scan_restore(scan=withdrawn, user=boss, reason="  withdrawn by   mistake ")

    withdrawn.refresh_from_db()
    assert not withdrawn.is_withdrawn and withdrawn.withdrawal_reason == ""
    assert [s.pk for s in selectors.worklist(user=clinician)] == [withdrawn.pk]
    [entry] = withdrawn.withdrawals.all()
    assert (entry.withdrawn_by, entry.reason, entry.restored_by, entry.restore_reason) == (
        clinician, "wrong patient", boss, "withdrawn by mistake")
    services.scan_withdraw(scan=withdrawn, user=clinician, reason="wrong image after all")
    assert [w.reason for w in withdrawn.withdrawals.all()] == ["wrong image after all", "wrong patient"]


def test_a_scan_that_is_not_withdrawn_is_not_restored(organization, clinician):
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)

    with pytest.raises(ValidationError, match="This scan is not withdrawn"):
        services.scan_restore(scan=scan, user=clinician, reason="why not")
    assert not ScanWithdrawal.objects.exists()


def test_restoring_is_refused_while_the_same_slice_is_on_record_again(organization, clinician, active_model_version):
    patient = PatientFactory(organization=organization)
    first = services.scan_create(patient=patient, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)
    services.scan_withdraw(scan=first, user=clinician, reason="wrong image")
    again = services.scan_create(patient=patient, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)

    with pytest.raises(ValidationError, match=f"uploaded again for this patient as scan #{again.pk}"):
        services.scan_restore(scan=first, user=clinician, reason="it was right")
    first.refresh_from_db()
    assert first.is_withdrawn

    services.scan_withdraw(scan=again, user=clinician, reason="the first one stands")
    services.scan_restore(scan=first, user=clinician, reason="it was right")
    first.refresh_from_db()
    assert not first.is_withdrawn



def test_refused_while_the_same_dicom_instance_stands_again_with_other_pixels(organization, clinician):
    patient = PatientFactory(organization=organization)
    first = ScanFactory(patient=patient, uploaded_by=clinician, dicom_instance_uid="1.2.826.0.1.3680043.8.498.33")
    services.scan_withdraw(scan=first, user=clinician, reason="wrong window")
    again = ScanFactory(patient=patient, uploaded_by=clinician, dicom_instance_uid=first.dicom_instance_uid)

    with pytest.raises(ValidationError, match=f"uploaded again for this patient as scan #{again.pk}"):
        services.scan_restore(scan=first, user=clinician, reason="it was right")
    first.refresh_from_db()
    assert first.is_withdrawn and first.sha256 != again.sha256

def test_a_restoral_that_crosses_an_upload_of_the_same_slice_is_refused_and_leaves_the_scan_withdrawn(
        transactional_db, organization, clinician, active_model_version):
    require_postgresql()
    patient = PatientFactory(organization=organization)
    first = services.scan_create(patient=patient, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)
    services.scan_withdraw(scan=first, user=clinician, reason="wrong image")

    again, restoral = cross(
        lambda: services.scan_create(patient=patient, file=SimpleUploadedFile("b.png", image_bytes()),
                                     uploaded_by=clinician),
        lambda: services.scan_restore(scan=first, user=clinician, reason="it was right"), waits_at="UPDATE")

    assert isinstance(restoral, ValidationError), restoral
    assert f"uploaded again for this patient as scan #{again.pk}" in restoral.messages[0]
    first.refresh_from_db()
    assert first.is_withdrawn and not ScanWithdrawal.objects.get(scan=first).restored_at


def test_only_the_uploader_or_an_administrator_may_restore_and_a_reason_is_needed(withdrawn, nurse, other_clinician,
                                                                                  clinician):
    with pytest.raises(PermissionDenied, match="or an administrator can restore it"):
        services.scan_restore(scan=withdrawn, user=nurse, reason="mistake")
    with pytest.raises(ValidationError, match="No such scan in your organization"):
        services.scan_restore(scan=withdrawn, user=other_clinician, reason="mistake")
    with pytest.raises(ValidationError, match="Say why the scan is restored"):
        services.scan_restore(scan=withdrawn, user=clinician, reason="  ")
    withdrawn.refresh_from_db()
    assert withdrawn.is_withdrawn
