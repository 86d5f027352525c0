"""Patients."""

from __future__ import annotations

import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import Organization, Patient, PatientChange


def _validated(*, mrn: str, name: str, birth_date: datetime.date, sex: str) -> tuple[str, str]:
    mrn, name = (mrn or "").strip(), (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not mrn:
        errors["mrn"] = ["The MRN is required."]
    if not name:
        errors["name"] = ["The name is required."]
    if birth_date and birth_date > timezone.localdate():
        errors["birth_date"] = ["The birth date is in the future."]
    if sex not in Patient.Sex.values:
        errors["sex"] = [f"Unknown sex {sex!r}; choose one of {', '.join(Patient.Sex.values)}."]
    if errors:
        raise ValidationError(errors)
    return mrn, name


def _save_unique(patient: Patient) -> Patient:
    organization = patient.organization
    duplicate = ValidationError({"mrn": [f"A patient with MRN {patient.mrn} already exists in {organization.name}."]})
    if Patient.objects.filter(organization=organization, mrn=patient.mrn).exclude(pk=patient.pk).exists():
        raise duplicate
    patient.full_clean(validate_constraints=False)
    try:
        # A concurrent request may insert the same MRN between the check and the write.
        with transaction.atomic():
            patient.save()
    except IntegrityError:
        raise duplicate from None
    return patient


def patient_create(
    *, organization: Organization, mrn: str, name: str, birth_date: datetime.date, sex: str
) -> Patient:
    mrn, name = _validated(mrn=mrn, name=name, birth_date=birth_date, sex=sex)
    return _save_unique(Patient(organization=organization, mrn=mrn, name=name, birth_date=birth_date, sex=sex))


def _as_json(values: dict[str, object], fields: list[str]) -> dict[str, object]:
    return {f: values[f].isoformat() if isinstance(values[f], datetime.date) else values[f] for f in fields}


def patient_update(
    *, patient: Patient, changed_by: AbstractBaseUser, mrn: str, name: str, birth_date: datetime.date, sex: str
) -> Patient:
    """Correct a patient's details (a mistyped name or MRN); the scans and their results stay theirs.

    Nothing is written unless every value is valid and the MRN stays unique in the organization.
    Each correction is recorded with who made it and the old and new values of the changed fields.
    Returns the patient as stored; the object passed in is left as it was.
    """
    mrn, name = _validated(mrn=mrn, name=name, birth_date=birth_date, sex=sex)
    wanted = {"mrn": mrn, "name": name, "birth_date": birth_date, "sex": sex}
    with transaction.atomic():
        # The stored row, locked: a colleague's correction saved a moment ago is what this one changes.
        stored = Patient.objects.select_for_update().select_related("organization").get(pk=patient.pk)
        original = {field: getattr(stored, field) for field in wanted}
        changed = [field for field, value in wanted.items() if value != original[field]]
        if not changed:
            return stored
        for field in changed:
            setattr(stored, field, wanted[field])
        _save_unique(stored)
        PatientChange.objects.create(patient=stored, changed_by=changed_by,
                                     before=_as_json(original, changed), after=_as_json(wanted, changed))
    return stored
