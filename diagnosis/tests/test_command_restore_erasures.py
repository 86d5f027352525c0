"""`manage.py restore --replace` of a backup made before a patient was erased: the patient does not come back. The
restored database erases the record again, deletes the backup's copies of its images, and keeps every erasure on
record, those of patients registered after the backup included."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from diagnosis import services
from diagnosis.models import Membership, Patient, PatientAccess, PatientErasure, Scan

from .factories import DonePredictionFactory, MembershipFactory, PatientFactory, ScanFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _backup(out_dir: Path) -> Path:
    stdout = StringIO()
    call_command("backup", str(out_dir), stdout=stdout, stderr=StringIO())
    return Path(stdout.getvalue().strip().splitlines()[-1])


def test_a_patient_erased_after_the_backup_does_not_come_back_with_it(tmp_path):
    boss = MembershipFactory(role=Membership.Role.ADMIN, user__username="boss").user
    organization = boss.membership.organization
    withdrew = PatientFactory(organization=organization, name="Zebedee Quartermain", mrn="QX-1")
    stays = PatientFactory(organization=organization, name="Ada Example", mrn="A-1")
    scan = ScanFactory(patient=withdrew, uploaded_by=boss)
    prediction = DonePredictionFactory(scan=scan)
    prediction.heatmap.save("heat.png", ContentFile(b"\x89PNG heat"), save=True)
    kept = ScanFactory(patient=stays, uploaded_by=boss)
    services.patient_access_record(user=boss, patient=withdrew, what="patient", channel="web")
    backup = _backup(tmp_path / "backups")
    files = [scan.image.name, prediction.heatmap.name]
    erasure = services.patient_erase(patient=withdrew, user=boss, reason="consent withdrawn", confirm_mrn="QX-1")
    services.erasure_files_remove(erasure_id=erasure.pk)
    later = PatientFactory(organization=organization, mrn="L-1")  # registered, then erased, after the backup
    services.patient_erase(patient=later, user=boss, reason="end of the pilot", confirm_mrn="L-1")

    stderr = StringIO()
    call_command("restore", str(backup), "--replace", stderr=stderr)

    assert "1 patient record(s) erased after the backup was made were erased again" in stderr.getvalue()
    assert list(Patient.objects.all()) == [stays] and list(Scan.objects.all()) == [kept]
    assert not any(default_storage.exists(name) for name in files) and default_storage.exists(kept.image.name)
    again, carried = PatientErasure.objects.order_by("erased_at")
    assert (again.patient_id, again.erased_by, again.erased_by_name, again.reason, again.scans) == (
        withdrew.pk, boss, "boss", "consent withdrawn", 1)
    assert again.erased_at == erasure.erased_at and again.files == [] and again.files_removed_at is not None
    assert (carried.patient_id, carried.reason, carried.scans) == (later.pk, "end of the pilot", 0)
    [entry] = PatientAccess.objects.all()
    assert (entry.patient, entry.erasure, entry.user) == (None, again, boss)


def test_a_backup_made_after_the_erasure_restores_as_it_was(tmp_path):
    boss = MembershipFactory(role=Membership.Role.ADMIN, user__username="boss").user
    patient = PatientFactory(organization=boss.membership.organization, mrn="QX-2")
    ScanFactory(patient=patient, uploaded_by=boss)
    erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn="QX-2")
    services.erasure_files_remove(erasure_id=erasure.pk)
    backup = _backup(tmp_path / "backups")

    stderr = StringIO()
    call_command("restore", str(backup), "--replace", stderr=stderr)

    assert "erased again" not in stderr.getvalue()
    assert list(PatientErasure.objects.values_list("pk", "patient_id")) == [(erasure.pk, patient.pk)]


def test_a_record_whose_merge_into_the_erased_one_was_undone_after_the_backup_keeps_its_scans(tmp_path):
    boss = MembershipFactory(role=Membership.Role.ADMIN, user__username="boss").user
    organization = boss.membership.organization
    withdrew = PatientFactory(organization=organization, name="Zebedee Quartermain", mrn="QX-3")
    own = ScanFactory(patient=withdrew, uploaded_by=boss)
    other = PatientFactory(organization=organization, name="Zebedee Quartermaine", mrn="QX-4",
                           birth_date=withdrew.birth_date)
    theirs = ScanFactory(patient=other, uploaded_by=boss)
    services.patient_merge(duplicate=other, into=withdrew, user=boss, reason="registered twice")
    backup = _backup(tmp_path / "backups")  # the merge stands in the backup
    services.patient_merge_undo(duplicate=other, user=boss, reason="two people after all")
    services.patient_erase(patient=withdrew, user=boss, reason="consent withdrawn", confirm_mrn="QX-3")

    call_command("restore", str(backup), "--replace", stderr=StringIO())

    assert list(Patient.objects.all()) == [other] and Patient.objects.get().merged_into is None
    assert list(Scan.objects.all()) == [theirs] and Scan.objects.get().patient_id == other.pk
    assert not Scan.objects.filter(pk=own.pk).exists()
