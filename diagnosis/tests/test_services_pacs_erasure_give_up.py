"""Giving up asking the archive to delete an erased patient's results: an administrator, or the time limit
(KIDNEYWEB_ERASURE_ARCHIVE_DAYS after the erasure), stops the notes the archive did not store, and kidneyweb forgets
the patient's details they kept. The archive is a real Orthanc."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from diagnosis import services
from diagnosis.models import PacsDelivery, PatientErasure

from .test_services_pacs import STUDY, _dicom_scan, allow_http, archived, patient  # noqa: F401 (fixtures)
from .test_services_pacs_erasure_rejection import MRN, _erase, _everything_stored, _notes
from .test_services_pacs_rejection import _stored_result


def _failed_note(patient, clinician, boss, django_capture_on_commit_callbacks, seed=0):
    scan = _dicom_scan(patient, clinician, seed=seed)
    _stored_result(scan, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn",
                                         confirm_mrn=patient.mrn)
    (note,) = _notes(erasure)
    PacsDelivery.objects.filter(pk=note.pk).update(status=PacsDelivery.Status.FAILED, attempts=5,
                                                    last_error="Gave up after 5 attempts.")
    return erasure, note


def test_an_administrator_gives_up_a_note_not_stored_and_nothing_of_the_patient_stays(
        archived, orthanc, organization, patient, clinician, boss, django_capture_on_commit_callbacks):
    erasure, note = _failed_note(patient, clinician, boss, django_capture_on_commit_callbacks)
    assert MRN in _everything_stored()  # what the note needs to name the results in the archive

    services.pacs_erasure_give_up(erasure=erasure, by=boss)

    note.refresh_from_db()
    assert (note.status, note.filed_as, note.filed_in) == (PacsDelivery.Status.FAILED, [], {})
    assert note.last_error.startswith(f"Given up by {boss.username}: the patient's details it needed were "
                                      "forgotten")
    # Its own results' UIDs stay, to say what the archive may still hold.
    assert len(note.rejected) == 1
    everything = _everything_stored()
    for trace in (MRN, "Hopper", "19061209", STUDY, "A-0"):
        assert trace not in everything, trace
    notes = PatientErasure.objects.get(pk=erasure.pk).archive_notes
    assert (notes.failed, notes.given_up_by) == (1, boss.username) and notes.given_up_at is not None

    with pytest.raises(ValidationError, match="cannot be sent again"):
        services.pacs_send_again(delivery=note, by=boss)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.pacs_send_failed_again(organization=organization, by=boss) == 0
    with pytest.raises(ValidationError, match="already given up"):
        services.pacs_erasure_give_up(erasure=erasure, by=boss)
    assert orthanc.instance_tags(note.sop_instance_uid) is None


def test_a_note_still_being_sent_or_stored_is_not_given_up_by_an_administrator(
        archived, patient, clinician, boss, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    _stored_result(scan, django_capture_on_commit_callbacks)
    erasure, _ = _erase(patient, boss, django_capture_on_commit_callbacks)
    (note,) = _notes(erasure)

    with pytest.raises(ValidationError, match="still being sent"):
        services.pacs_erasure_give_up(erasure=erasure, by=boss)
    note.refresh_from_db()
    assert note.status == PacsDelivery.Status.PENDING and note.filed_as[1] == MRN
    assert PatientErasure.objects.get(pk=erasure.pk).archive_given_up_at is None

    assert services.pacs_deliver(delivery_id=note.pk).status == PacsDelivery.Status.DELIVERED
    with pytest.raises(ValidationError, match="stored every note"):
        services.pacs_erasure_give_up(erasure=erasure, by=boss)


def test_the_time_limit_gives_up_notes_not_stored_of_old_erasures_only(
        archived, orthanc, organization, patient, clinician, boss, django_capture_on_commit_callbacks, settings):
    settings.KIDNEYWEB_ERASURE_ARCHIVE_DAYS = 30
    old, failed = _failed_note(patient, clinician, boss, django_capture_on_commit_callbacks)
    # An archive that never answered: its note is still queued (its task lost, say).
    second = services.patient_create(organization=organization, name="Ada Lovelace", mrn="00999999",
                                     birth_date=datetime.date(1915, 12, 10), sex="F")
    _stored_result(_dicom_scan(second, clinician, seed=1), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        pending_erasure = services.patient_erase(patient=second, user=boss, reason="consent withdrawn",
                                                 confirm_mrn="00999999")
    (pending,) = _notes(pending_erasure)
    third = services.patient_create(organization=organization, name="Mary Somerville", mrn="00888888",
                                    birth_date=datetime.date(1980, 12, 26), sex="F")
    _, young = _failed_note(third, clinician, boss, django_capture_on_commit_callbacks, seed=2)
    now = timezone.now() + datetime.timedelta(days=30, minutes=1)
    PatientErasure.objects.filter(pk=young.erasure_id).update(erased_at=now - datetime.timedelta(days=29))

    assert sorted(services.pacs_erasure_give_up_due(now=now)) == sorted([old.pk, pending_erasure.pk])

    for note in (failed, pending):
        note.refresh_from_db()
        assert (note.status, note.filed_as, note.filed_in) == (PacsDelivery.Status.FAILED, [], {})
        assert note.last_error.startswith("Given up 30 days after the erasure")
    assert PatientErasure.objects.get(pk=old.pk).archive_given_up_by == ""
    young.refresh_from_db()
    assert young.filed_as[1] == "00888888" and young.status == PacsDelivery.Status.FAILED
    # The lost task of the pending note, coming late, sends nothing.
    assert services.pacs_deliver(delivery_id=pending.pk).attempts == pending.attempts
    assert orthanc.instance_tags(pending.sop_instance_uid) is None
    assert services.pacs_erasure_give_up_due(now=now) == []


def test_the_hospitals_system_hears_which_results_the_archive_may_still_hold(
        archived, organization, patient, clinician, boss, django_capture_on_commit_callbacks):
    from diagnosis.models import Organization, WebhookDelivery

    Organization.objects.filter(pk=organization.pk).update(webhook_url="https://ris.example.org/kidneyweb")
    erasure, note = _failed_note(patient, clinician, boss, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=False):
        services.pacs_erasure_give_up(erasure=erasure, by=boss)

    sent = WebhookDelivery.objects.get(event="erasure.archive_given_up").payload
    assert sent["erasure"] == {"id": erasure.pk, "patient": patient.pk, "erased_at": erasure.erased_at.isoformat(),
                               "api_path": "/api/v1/erasures/"}
    assert (sent["given_up_by"], sent["dicom_result_uids"]) == (boss.username, [note.rejected[0]["instance"]])
    for trace in (MRN, "Hopper", STUDY):
        assert trace not in str(sent), trace
