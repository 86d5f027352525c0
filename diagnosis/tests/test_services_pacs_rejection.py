"""A scan withdrawn as entered in error: the archive (a real Orthanc) is sent a rejection note (IHE IOCM, a Key
Object Selection document "Rejected for Patient Safety Reasons") naming the AI result captures it was sent; restored,
the scan's result goes to the archive again as a new instance."""

import shutil
import subprocess

import pydicom
import pytest

from diagnosis import services
from diagnosis.dicom_rejection import KEY_OBJECT_SELECTION, delivery_note
from diagnosis.models import PacsDelivery

from . import orthanc as pacs
from .test_services_pacs import STUDY, _dicom_scan, _finished, allow_http, archived, patient  # noqa: F401 (fixtures)


def _stored_result(scan, django_capture_on_commit_callbacks, review_label=None, reviewer=None):
    """Finish the scan's diagnosis and store its capture (and a review's) in the archive; returns the deliveries."""
    delivery, _ = _finished(scan, django_capture_on_commit_callbacks)
    deliveries = [services.pacs_deliver(delivery_id=delivery.pk)]
    if review_label:
        with django_capture_on_commit_callbacks(execute=False):
            review = services.review_create(scan=scan, label=review_label, user=reviewer)
        deliveries.append(services.pacs_deliver(delivery_id=PacsDelivery.objects.get(review=review).pk))
    assert {d.status for d in deliveries} == {PacsDelivery.Status.DELIVERED}
    return deliveries


def _rejection(scan) -> PacsDelivery | None:
    return PacsDelivery.objects.filter(scan=scan, kind=PacsDelivery.Kind.REJECTION).order_by("id").last()


def _referenced(tags) -> list[str]:
    return [reference["ReferencedSOPInstanceUID"]
            for series in tags["CurrentRequestedProcedureEvidenceSequence"][0]["ReferencedSeriesSequence"]
            for reference in series["ReferencedSOPSequence"]]


def test_withdrawing_a_scan_sends_the_archive_a_rejection_note_naming_the_captures_it_stored(
        archived, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    stored = _stored_result(scan, django_capture_on_commit_callbacks, review_label="Tumor", reviewer=clinician)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.scan_withdraw(scan=scan, user=clinician, reason="Uploaded for the wrong patient.")
    note = _rejection(scan)
    assert note is not None and note.status == PacsDelivery.Status.PENDING
    assert len(callbacks) == 1  # sent once the withdrawal commits
    assert [c["instance"] for c in note.rejected] == [d.sop_instance_uid for d in stored]

    delivered = services.pacs_deliver(delivery_id=note.pk)

    assert (delivered.status, delivered.attempts, delivered.last_error) == (PacsDelivery.Status.DELIVERED, 1, "")
    tags = orthanc.instance_tags(note.sop_instance_uid)
    assert tags is not None, "the archive does not hold the rejection note"
    assert (tags["SOPClassUID"], tags["Modality"], tags["StudyInstanceUID"]) == (KEY_OBJECT_SELECTION, "KO", STUDY)
    assert (tags["PatientID"], tags["PatientName"]) == ("00123456", "Grace Hopper")  # where the captures are filed
    title = tags["ConceptNameCodeSequence"][0]
    assert (title["CodeValue"], title["CodingSchemeDesignator"], title["CodeMeaning"]) == (
        "113037", "DCM", "Rejected for Patient Safety Reasons")
    assert _referenced(tags) == [d.sop_instance_uid for d in stored]
    assert "Uploaded for the wrong patient." in tags["ContentSequence"][0]["TextValue"]
    # Each capture's own series (one per model version) is named.
    series = tags["CurrentRequestedProcedureEvidenceSequence"][0]["ReferencedSeriesSequence"]
    assert [s["SeriesInstanceUID"] for s in series] == [orthanc.instance_tags(stored[0].sop_instance_uid)[
        "SeriesInstanceUID"]]


def test_the_rejection_note_passes_the_reference_validator(
        archived, patient, clinician, django_capture_on_commit_callbacks, tmp_path):
    validator = shutil.which("dciodvfy")
    if validator is None:
        pytest.skip("needs dciodvfy (Debian package dicom3tools; .ci/run installs it)")
    scan = _dicom_scan(patient, clinician)
    _stored_result(scan, django_capture_on_commit_callbacks)
    services.scan_withdraw(scan=scan, user=clinician, reason="Wrong image.")
    note = _rejection(scan)
    (tmp_path / "note.dcm").write_bytes(delivery_note(note))

    checked = subprocess.run([validator, str(tmp_path / "note.dcm")], capture_output=True, text=True, timeout=60)

    report = checked.stdout + checked.stderr
    assert "KeyObjectSelectionDocument" in report, report  # checked as a Key Object Selection document
    assert [line for line in report.splitlines() if line.startswith("Error")] == [], report
    assert pydicom.dcmread(tmp_path / "note.dcm").SOPInstanceUID == note.sop_instance_uid


def test_no_note_is_sent_when_the_archive_was_never_sent_a_capture_of_the_scan(
        archived, organization, boss, patient, clinician, django_capture_on_commit_callbacks):
    queued = _dicom_scan(patient, clinician)
    capture, _ = _finished(queued, django_capture_on_commit_callbacks)  # queued, its task not run yet
    services.scan_withdraw(scan=queued, user=clinician, reason="Wrong patient.")
    assert _rejection(queued) is None
    assert services.pacs_deliver(delivery_id=capture.pk).attempts == 0  # and it stays unsent

    stored_then_off = _dicom_scan(patient, clinician, seed=1)
    _stored_result(stored_then_off, django_capture_on_commit_callbacks)
    services.pacs_set(organization=organization, url="", by=boss)
    services.scan_withdraw(scan=stored_then_off, user=clinician, reason="Wrong patient.")
    assert _rejection(stored_then_off) is None  # no archive to send it to: the scan page names the instances


def test_a_capture_whose_attempt_failed_is_rejected_too_as_the_archive_may_have_stored_it(
        archived, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    capture, _ = _finished(scan, django_capture_on_commit_callbacks)
    PacsDelivery.objects.filter(pk=capture.pk).update(status=PacsDelivery.Status.FAILED, attempts=1,
                                                       last_error="The archive did not answer in time.")
    services.scan_withdraw(scan=scan, user=clinician, reason="Wrong patient.")

    assert [c["instance"] for c in _rejection(scan).rejected] == [capture.sop_instance_uid]


def test_a_restored_scan_sends_its_result_again_as_a_new_instance_and_a_new_withdrawal_rejects_only_that(
        archived, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    (first,) = _stored_result(scan, django_capture_on_commit_callbacks)
    services.scan_withdraw(scan=scan, user=clinician, reason="Wrong patient.")
    services.pacs_deliver(delivery_id=_rejection(scan).pk)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.scan_restore(scan=scan, user=clinician, reason="Withdrawn by mistake.")
    again = PacsDelivery.objects.get(scan=scan, kind=PacsDelivery.Kind.CAPTURE, generation=1)
    assert again.prediction_id == first.prediction_id and len(callbacks) == 1
    assert again.sop_instance_uid != first.sop_instance_uid  # the archive may refuse a rejected instance
    assert services.pacs_deliver(delivery_id=again.pk).status == PacsDelivery.Status.DELIVERED
    assert orthanc.instance_tags(again.sop_instance_uid) is not None
    # What the export answers now is the instance the archive holds.
    from diagnosis.dicom_export import scan_result_capture
    scan.refresh_from_db()
    assert pydicom.dcmread(pydicom.filebase.DicomBytesIO(scan_result_capture(scan=scan))).SOPInstanceUID == (
        again.sop_instance_uid)

    services.scan_withdraw(scan=scan, user=clinician, reason="Wrong patient after all.")
    second_note = _rejection(scan)
    assert [c["instance"] for c in second_note.rejected] == [again.sop_instance_uid]
    assert PacsDelivery.objects.filter(kind=PacsDelivery.Kind.REJECTION, scan=scan).count() == 2


def test_a_capture_queued_before_a_withdrawal_and_its_undoing_is_not_sent_as_the_restoral_sent_a_new_one(
        archived, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    capture, _ = _finished(scan, django_capture_on_commit_callbacks)
    services.scan_withdraw(scan=scan, user=clinician, reason="Wrong patient.")
    services.scan_restore(scan=scan, user=clinician, reason="Withdrawn by mistake.")

    assert services.pacs_deliver(delivery_id=capture.pk).last_error == (
        "Not sent: a new instance of the scan's result (its withdrawal was undone, or the patient's details changed) "
        "replaced it, and is sent on its own.")
    assert PacsDelivery.objects.get(scan=scan, generation=1).status == PacsDelivery.Status.PENDING


def test_a_note_the_archive_did_not_take_is_sent_again_after_an_outage_though_its_scan_is_withdrawn(
        archived, organization, boss, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    _stored_result(scan, django_capture_on_commit_callbacks)
    services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME, password="wrong",
                      by=boss)
    services.scan_withdraw(scan=scan, user=clinician, reason="Wrong patient.")
    refused = services.pacs_deliver(delivery_id=_rejection(scan).pk)
    assert (refused.status, refused.response_status) == (PacsDelivery.Status.FAILED, 401)

    services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME,
                      password=pacs.PASSWORD, by=boss)
    assert services.pacs_send_failed_again(organization=organization, by=boss) == 1
    assert services.pacs_deliver(delivery_id=refused.pk).status == PacsDelivery.Status.DELIVERED
    assert orthanc.instance_tags(refused.sop_instance_uid) is not None


def test_filing_a_slice_for_the_right_patient_rejects_the_captures_filed_under_the_wrong_one(
        archived, organization, patient, clinician, django_capture_on_commit_callbacks, settings):
    from .factories import PatientFactory

    settings.KIDNEYWEB_DICOM_PATIENT_ID_CHECK = False  # a site whose slices' patient IDs are not its MRNs
    scan = _dicom_scan(patient, clinician)
    (stored,) = _stored_result(scan, django_capture_on_commit_callbacks)
    right = PatientFactory(organization=organization, mrn="00123456-2")

    services.scan_refile(scan=scan, patient=right, user=clinician, reason="Uploaded for the wrong patient.")

    assert [c["instance"] for c in _rejection(scan).rejected] == [stored.sop_instance_uid]


def test_correcting_the_patients_name_replaces_the_capture_in_the_archive_with_one_naming_them_as_now(
        archived, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    (old,) = _stored_result(scan, django_capture_on_commit_callbacks)

    services.patient_update(patient=patient, changed_by=clinician, name="Grace Brewster Hopper")

    note = _rejection(scan)
    new = PacsDelivery.objects.get(scan=scan, kind=PacsDelivery.Kind.CAPTURE, generation=1)
    assert note.withdrawal is None and [c["instance"] for c in note.rejected] == [old.sop_instance_uid]
    assert "the patient's name was corrected by" in note.description
    assert services.pacs_deliver(delivery_id=note.pk).status == PacsDelivery.Status.DELIVERED
    assert services.pacs_deliver(delivery_id=new.pk).status == PacsDelivery.Status.DELIVERED
    filed = orthanc.instance_tags(note.sop_instance_uid)
    assert (filed["PatientName"], filed["PatientID"]) == ("Grace Hopper", "00123456")  # where the old capture is
    assert _referenced(filed) == [old.sop_instance_uid]
    assert new.sop_instance_uid != old.sop_instance_uid
    assert orthanc.instance_tags(new.sop_instance_uid)["PatientName"] == "Grace Brewster Hopper"


def test_a_correction_before_the_capture_left_rejects_nothing_and_the_capture_names_the_patient_as_now(
        archived, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    capture, _ = _finished(scan, django_capture_on_commit_callbacks)  # queued, not sent

    services.patient_update(patient=patient, changed_by=clinician, birth_date=patient.birth_date.replace(day=10))

    assert _rejection(scan) is None
    assert services.pacs_deliver(delivery_id=capture.pk).status == PacsDelivery.Status.DELIVERED
    assert orthanc.instance_tags(capture.sop_instance_uid)["PatientBirthDate"] == "19061210"


def test_merging_records_replaces_the_moved_scans_captures_under_the_record_that_stays_and_undoing_it_moves_them_back(
        archived, orthanc, organization, patient, boss, clinician, django_capture_on_commit_callbacks):
    from .factories import PatientFactory

    stays = PatientFactory(organization=organization, name="Grace B. Hopper", mrn="00999999",
                           birth_date=patient.birth_date, sex=patient.sex)
    scan = _dicom_scan(patient, clinician)
    (old,) = _stored_result(scan, django_capture_on_commit_callbacks)

    services.patient_merge(duplicate=patient, into=stays, user=boss, reason="Registered twice.")

    merged = PacsDelivery.objects.get(scan=scan, kind=PacsDelivery.Kind.CAPTURE, generation=1)
    services.pacs_deliver(delivery_id=_rejection(scan).pk)
    services.pacs_deliver(delivery_id=merged.pk)
    assert orthanc.instance_tags(_rejection(scan).sop_instance_uid)["PatientID"] == "00123456"
    assert "was merged into MRN 00999999" in _rejection(scan).description
    assert orthanc.instance_tags(merged.sop_instance_uid)["PatientID"] == "00999999"

    services.patient_merge_undo(duplicate=patient, user=boss, reason="Two people after all.")

    back = PacsDelivery.objects.get(scan=scan, kind=PacsDelivery.Kind.CAPTURE, generation=2)
    assert [c["instance"] for c in _rejection(scan).rejected] == [merged.sop_instance_uid]
    assert services.pacs_deliver(delivery_id=back.pk).status == PacsDelivery.Status.DELIVERED
    assert orthanc.instance_tags(back.sop_instance_uid)["PatientID"] == "00123456"
    assert old.sop_instance_uid not in {merged.sop_instance_uid, back.sop_instance_uid}


def test_a_withdrawn_scan_or_an_organization_without_an_archive_sends_nothing_when_the_patient_changes(
        archived, organization, boss, patient, clinician, django_capture_on_commit_callbacks):
    withdrawn = _dicom_scan(patient, clinician)
    _stored_result(withdrawn, django_capture_on_commit_callbacks)
    services.scan_withdraw(scan=withdrawn, user=clinician, reason="Wrong patient.")
    kept = _dicom_scan(patient, clinician, seed=1)
    _stored_result(kept, django_capture_on_commit_callbacks)
    before = PacsDelivery.objects.count()
    services.pacs_set(organization=organization, url="", by=boss)

    services.patient_update(patient=patient, changed_by=clinician, name="Grace Brewster Hopper")

    assert PacsDelivery.objects.count() == before  # the withdrawal's note only
    services.pacs_set(organization=organization, url="https://pacs.example.org/dicom-web", by=boss)
    services.patient_update(patient=patient, changed_by=clinician, name="Grace M. Hopper")
    assert PacsDelivery.objects.filter(scan=withdrawn).count() == 2  # its capture and the withdrawal's note
    # The note is filed under the name the archive was given, though the record changed twice since.
    assert _rejection(kept).filed_as[0] == "Grace Hopper"
