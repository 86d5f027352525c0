"""A patient's data erased: the archive (a real Orthanc) is sent a note (IHE IOCM, "Data Retention Policy Expired")
asking it to delete the AI result captures it was sent. The note outlives the scan, keeps the patient's details as
the captures were filed only until the archive stored it, and goes like any other: retried, sent again."""

import io
import shutil
import subprocess

import pydicom
import pytest
from django.core.management import call_command

from diagnosis import services
from diagnosis.dicom_rejection import KEY_OBJECT_SELECTION, delivery_note
from diagnosis.models import PacsDelivery, Patient

from .test_services_pacs import STUDY, _dicom_scan, _finished, allow_http, archived, patient  # noqa: F401 (fixtures)
from .test_services_pacs_rejection import _referenced, _rejection, _stored_result

MRN = "00123456"


def _erase(patient, boss, django_capture_on_commit_callbacks, execute=False):
    with django_capture_on_commit_callbacks(execute=execute) as callbacks:
        erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)
    return erasure, callbacks


def _notes(erasure) -> list[PacsDelivery]:
    return list(PacsDelivery.objects.filter(erasure=erasure).order_by("id"))


def _everything_stored() -> str:
    out = io.StringIO()
    call_command("dumpdata", "diagnosis", stdout=out)
    return out.getvalue()


def test_erasing_a_patient_asks_the_archive_to_delete_the_captures_it_stored_and_then_forgets_them(
        archived, orthanc, patient, clinician, boss, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    stored = _stored_result(scan, django_capture_on_commit_callbacks, review_label="Tumor", reviewer=clinician)

    erasure, callbacks = _erase(patient, boss, django_capture_on_commit_callbacks)

    assert not Patient.objects.filter(pk=patient.pk).exists()
    (note,) = _notes(erasure)
    assert (note.scan_id, note.kind, note.status) == (None, PacsDelivery.Kind.REJECTION, PacsDelivery.Status.PENDING)
    assert [c["instance"] for c in note.rejected] == [d.sop_instance_uid for d in stored]
    # Queued once the erasure commits, with the files' removal and the notification.
    assert (note.pk,) in [getattr(callback, "args", None) for callback in callbacks]

    delivered = services.pacs_deliver(delivery_id=note.pk)

    assert (delivered.status, delivered.attempts, delivered.last_error) == (PacsDelivery.Status.DELIVERED, 1, "")
    tags = orthanc.instance_tags(note.sop_instance_uid)
    assert tags is not None, "the archive does not hold the note"
    assert (tags["SOPClassUID"], tags["Modality"], tags["StudyInstanceUID"]) == (KEY_OBJECT_SELECTION, "KO", STUDY)
    assert (tags["PatientID"], tags["PatientName"], tags["AccessionNumber"]) == (MRN, "Grace Hopper", "A-0")
    assert (tags["StudyDate"], tags["StudyTime"]) == ("20261205", "093015")
    title = tags["ConceptNameCodeSequence"][0]
    assert (title["CodeValue"], title["CodingSchemeDesignator"], title["CodeMeaning"]) == (
        "113039", "DCM", "Data Retention Policy Expired")
    assert _referenced(tags) == [d.sop_instance_uid for d in stored]
    assert f"erasure #{erasure.pk}" in tags["ContentSequence"][0]["TextValue"]
    # Stored: kidneyweb keeps what it asked (its own results' UIDs), not whom or where.
    note.refresh_from_db()
    assert (note.filed_as, note.filed_in) == ([], {})
    everything = _everything_stored()
    for trace in (MRN, "Hopper", "19061209", STUDY, "A-0"):
        assert trace not in everything, trace


def test_captures_a_stored_note_rejected_already_are_not_named_again_but_those_of_one_not_stored_are(
        archived, orthanc, patient, clinician, boss, django_capture_on_commit_callbacks):
    withdrawn = _dicom_scan(patient, clinician)
    (rejected_then,) = _stored_result(withdrawn, django_capture_on_commit_callbacks)
    services.scan_withdraw(scan=withdrawn, user=clinician, reason="Wrong image.")
    assert services.pacs_deliver(delivery_id=_rejection(withdrawn).pk).status == PacsDelivery.Status.DELIVERED
    unsent_note = _dicom_scan(patient, clinician, seed=1)
    (rejected_never,) = _stored_result(unsent_note, django_capture_on_commit_callbacks)
    services.scan_withdraw(scan=unsent_note, user=clinician, reason="Wrong image.")
    PacsDelivery.objects.filter(pk=_rejection(unsent_note).pk).update(
        status=PacsDelivery.Status.FAILED, attempts=5, last_error="The archive did not answer in time.")

    erasure, _ = _erase(patient, boss, django_capture_on_commit_callbacks)

    (note,) = _notes(erasure)
    assert [c["instance"] for c in note.rejected] == [rejected_never.sop_instance_uid]
    assert rejected_then.sop_instance_uid not in str(note.rejected)
    assert services.pacs_deliver(delivery_id=note.pk).status == PacsDelivery.Status.DELIVERED
    assert orthanc.instance_tags(note.sop_instance_uid) is not None


def test_captures_filed_under_different_details_get_one_note_each_under_the_details_they_name(
        archived, patient, clinician, boss, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    first = _stored_result(scan, django_capture_on_commit_callbacks, review_label="Cyst", reviewer=clinician)
    earlier = ["Grace Murray", MRN, "19061209", "F"]
    PacsDelivery.objects.filter(pk=first[0].pk).update(filed_as=earlier)

    erasure, _ = _erase(patient, boss, django_capture_on_commit_callbacks)

    notes = _notes(erasure)
    assert [note.filed_as for note in notes] == [earlier, ["Grace Hopper", MRN, "19061209", "F"]]
    assert [[c["instance"] for c in note.rejected] for note in notes] == [[first[0].sop_instance_uid],
                                                                          [first[1].sop_instance_uid]]
    assert len({note.sop_instance_uid for note in notes}) == 2


def test_nothing_is_sent_for_captures_never_sent_or_when_no_archive_is_set(
        archived, organization, patient, clinician, boss, django_capture_on_commit_callbacks):
    queued = _dicom_scan(patient, clinician)
    _finished(queued, django_capture_on_commit_callbacks)  # its capture queued, its task not run yet
    erasure, _ = _erase(patient, boss, django_capture_on_commit_callbacks)
    assert _notes(erasure) == [] and not PacsDelivery.objects.exists()

    again = Patient.objects.create(organization=organization, name="Grace Hopper", mrn=MRN,
                                   birth_date=patient.birth_date, sex="F")
    scan = _dicom_scan(again, clinician, seed=2)
    _stored_result(scan, django_capture_on_commit_callbacks)
    services.pacs_set(organization=organization, url="", by=boss)
    erasure, _ = _erase(again, boss, django_capture_on_commit_callbacks)
    # No archive to ask: the notification's UIDs are all the hospital has to remove them by.
    assert _notes(erasure) == [] and not PacsDelivery.objects.exists()


def test_a_note_the_archive_did_not_store_keeps_what_it_needs_and_is_sent_again(
        archived, orthanc, organization, patient, clinician, boss, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    _stored_result(scan, django_capture_on_commit_callbacks)
    erasure, _ = _erase(patient, boss, django_capture_on_commit_callbacks)
    (note,) = _notes(erasure)
    PacsDelivery.objects.filter(pk=note.pk).update(status=PacsDelivery.Status.FAILED, attempts=5,
                                                    last_error="Gave up after 5 attempts.")
    note.refresh_from_db()
    assert note.filed_as[1] == MRN and note.filed_in["study_uid"] == STUDY

    with django_capture_on_commit_callbacks(execute=False):
        assert services.pacs_send_failed_again(organization=organization, by=boss) == 1

    assert services.pacs_deliver(delivery_id=note.pk).status == PacsDelivery.Status.DELIVERED
    assert orthanc.instance_tags(note.sop_instance_uid)["PatientID"] == MRN
    note.refresh_from_db()
    assert (note.filed_as, note.filed_in, note.sent_again_by) == ([], {}, boss)


def test_the_erasure_note_passes_the_reference_validator(
        archived, patient, clinician, boss, django_capture_on_commit_callbacks, tmp_path):
    validator = shutil.which("dciodvfy")
    if validator is None:
        pytest.skip("needs dciodvfy (Debian package dicom3tools; .ci/run installs it)")
    scan = _dicom_scan(patient, clinician)
    _stored_result(scan, django_capture_on_commit_callbacks, review_label="Stone", reviewer=clinician)
    erasure, _ = _erase(patient, boss, django_capture_on_commit_callbacks)
    (note,) = _notes(erasure)
    path = tmp_path / "note.dcm"
    path.write_bytes(delivery_note(note))

    checked = subprocess.run([validator, str(path)], capture_output=True, text=True, timeout=60)

    report = checked.stdout + checked.stderr
    assert "KeyObjectSelectionDocument" in report, report
    assert [line for line in report.splitlines() if line.startswith("Error")] == [], report
    assert pydicom.dcmread(path).SOPInstanceUID == note.sop_instance_uid
