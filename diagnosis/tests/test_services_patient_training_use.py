"""A patient refuses (or withdraws consent) that their slices train the model: any member records it, it is kept
with the record's corrections, training exports leave the patient's reviewed slices out from then on, and a merge
keeps the refusal."""

import csv
import datetime

import pytest
from django.core.exceptions import ValidationError

from diagnosis import selectors, services
from diagnosis.models import Patient, PatientChange

from .factories import DonePredictionFactory, PatientFactory, ReviewFactory, ScanFactory


def _reviewed(patient, clinician):
    scan = ScanFactory(patient=patient, uploaded_by=clinician)
    ReviewFactory(prediction=DonePredictionFactory(scan=scan), reviewed_by=clinician)
    return scan


def _exported(organization, tmp_path) -> list[str]:
    manifest = services.reviewed_scans_export(organization=organization, out_dir=tmp_path / "reviewed")
    with manifest.open(newline="") as handle:
        return [row["path"] for row in csv.DictReader(handle)]


def test_a_refusal_keeps_the_patients_slices_out_of_training_exports_until_allowed_again(
    organization, clinician, tmp_path
):
    patient, other = PatientFactory(organization=organization), PatientFactory(organization=organization)
    mine, theirs = _reviewed(patient, clinician), _reviewed(other, clinician)
    assert len(_exported(organization, tmp_path)) == 2

    refused = services.patient_training_use_set(patient=patient, user=clinician, allowed=False)

    assert refused.training_opt_out and Patient.objects.get(pk=patient.pk).training_opt_out
    assert list(selectors.reviewed_scans(organization=organization)) == [theirs]
    exported = _exported(organization, tmp_path)
    assert len(exported) == 1 and str(theirs.pk) in exported[0]
    [change] = PatientChange.objects.filter(patient=patient)
    assert change.changed_by == clinician and change.fields == [
        ("Slices used for AI training", "yes", "no (the patient refused)")]
    # Recording the same wish again changes nothing.
    services.patient_training_use_set(patient=patient, user=clinician, allowed=False)
    assert PatientChange.objects.filter(patient=patient).count() == 1

    services.patient_training_use_set(patient=patient, user=clinician, allowed=True)

    assert {scan.pk for scan in selectors.reviewed_scans(organization=organization)} == {mine.pk, theirs.pk}


def test_another_organization_or_a_merged_record_cannot_record_it(organization, clinician, boss, other_clinician):
    born = datetime.date(1950, 1, 1)
    kept, duplicate = (PatientFactory(organization=organization, birth_date=born, mrn=mrn) for mrn in ("K", "D"))
    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="registered twice")

    with pytest.raises(ValidationError, match="No such patient"):
        services.patient_training_use_set(patient=kept, user=other_clinician, allowed=False)
    with pytest.raises(ValidationError, match="Record the patient's wish there"):
        services.patient_training_use_set(patient=Patient.objects.get(pk=duplicate.pk), user=clinician, allowed=False)

    assert not Patient.objects.filter(training_opt_out=True).exists()


def test_merging_a_record_that_refused_keeps_the_persons_slices_out_of_training(organization, clinician, boss,
                                                                                 tmp_path):
    born = datetime.date(1950, 1, 1)
    kept, duplicate = (PatientFactory(organization=organization, birth_date=born, mrn=mrn) for mrn in ("K", "D"))
    _reviewed(kept, clinician), _reviewed(duplicate, clinician)
    services.patient_training_use_set(patient=duplicate, user=clinician, allowed=False)

    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="registered twice")

    kept.refresh_from_db()
    assert kept.training_opt_out and _exported(organization, tmp_path) == []
    assert PatientChange.objects.filter(patient=kept, changed_by=boss).get().after == {"training_opt_out": True}
