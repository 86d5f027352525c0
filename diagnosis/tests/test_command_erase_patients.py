"""`manage.py erase_patients`: the end of a pilot or a list of withdrawn consents, erased as the patient's page
does; without --yes it only says what it would erase, and a wrong MRN or a member who is not an administrator
erases nothing."""

from io import StringIO

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from diagnosis import services
from diagnosis.models import Patient, PatientErasure, Scan

from .factories import PatientFactory, ScanFactory


@pytest.fixture
def records(organization, clinician, boss):
    patients = [PatientFactory(organization=organization, mrn=f"P-{n}") for n in range(3)]
    scans = [ScanFactory(patient=patient, uploaded_by=clinician) for patient in patients]
    duplicate = PatientFactory(organization=organization, mrn="ED-1", birth_date=patients[0].birth_date)
    services.patient_merge(duplicate=duplicate, into=patients[0], user=boss, reason="registered twice")
    return patients, scans


def _run(*args: str) -> str:
    out = StringIO()
    call_command("erase_patients", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_without_yes_it_says_what_it_would_erase_and_changes_nothing(records, organization):
    said = _run(organization.slug, "--all", "--by", "boss", "--reason", "end of the pilot")

    assert "Would erase 3 record(s) of St. Elsewhere with 3 scan(s)" in said
    assert Patient.objects.count() == 4 and not PatientErasure.objects.exists()


def test_the_end_of_a_pilot_erases_every_record_with_its_merged_ones_and_images(records, organization, other_organization):
    patients, scans = records
    elsewhere = ScanFactory(patient=PatientFactory(organization=other_organization))

    said = _run(organization.slug, "--all", "--by", "boss", "--reason", "end of the pilot", "--yes")

    assert "Erased 3 record(s) of St. Elsewhere." in said
    assert list(Patient.objects.all()) == [elsewhere.patient] and list(Scan.objects.all()) == [elsewhere]
    assert not any(default_storage.exists(scan.image.name) for scan in scans)
    assert PatientErasure.objects.filter(files_removed_at__isnull=False).count() == 3


def test_named_records_only_and_a_wrong_or_merged_mrn_erases_nothing(records, organization):
    patients, _ = records
    with pytest.raises(CommandError, match="No record with MRN P-9"):
        _run(organization.slug, "--mrn", "P-1", "--mrn", "P-9", "--by", "boss", "--reason", "consent withdrawn", "--yes")
    with pytest.raises(CommandError, match="ED-1 were merged into other records"):
        _run(organization.slug, "--mrn", "ED-1", "--by", "boss", "--reason", "consent withdrawn", "--yes")
    assert Patient.objects.count() == 4

    _run(organization.slug, "--mrn", " P-1", "--by", "boss", "--reason", "consent withdrawn", "--yes")

    assert not Patient.objects.filter(pk=patients[1].pk).exists() and Patient.objects.count() == 3


def test_a_member_who_is_not_an_administrator_erases_nothing(records, organization, clinician):
    with pytest.raises(CommandError, match="Only an administrator"):
        _run(organization.slug, "--all", "--by", "alice", "--reason", "end of the pilot", "--yes")

    assert Patient.objects.count() == 4 and not PatientErasure.objects.exists()
