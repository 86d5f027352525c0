"""Erasing a record costs the same number of database queries whatever its number of scans: ``erase_patients
--all`` at the end of a pilot erases thousands of scans in one run, and one query per scan would make it hours."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from diagnosis import services
from diagnosis.models import Organization, PacsDelivery

from .factories import PacsDeliveryFactory, PatientFactory, ReviewFactory


def _record_with_archived_results(organization, scans: int):
    patient = PatientFactory(organization=organization)
    for _ in range(scans):
        capture = PacsDeliveryFactory(prediction__scan__patient=patient, status="delivered", attempts=1)
        review = ReviewFactory(prediction=capture.prediction, label="Cyst")
        PacsDeliveryFactory(prediction=capture.prediction, review=review, status="delivered", attempts=1)
    return patient


def _queries_to_erase(patient, boss, django_capture_on_commit_callbacks) -> int:
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=False):
        erasure = services.patient_erase(patient=patient, user=boss, reason="end of the pilot", confirm_mrn=patient.mrn)
    return len(queries), erasure


def test_erasing_a_record_of_many_scans_takes_as_many_queries_as_one_of_few(
        organization, boss, django_capture_on_commit_callbacks):
    Organization.objects.filter(pk=organization.pk).update(pacs_url="https://pacs.example.org/dicom-web")
    few = _record_with_archived_results(organization, scans=2)
    many = _record_with_archived_results(organization, scans=12)

    for_few, _ = _queries_to_erase(few, boss, django_capture_on_commit_callbacks)
    for_many, erasure = _queries_to_erase(many, boss, django_capture_on_commit_callbacks)

    print(f"queries to erase a record of 2 scans: {for_few}, of 12 scans: {for_many}")
    assert for_many == for_few
    # And it did the whole job: 12 notes asking the archive to delete 24 captures, 24 UIDs for the notification.
    notes = PacsDelivery.objects.filter(erasure=erasure)
    assert notes.count() == 12 and sum(len(note.rejected) for note in notes) == 24
    assert erasure.archive_results == 24
