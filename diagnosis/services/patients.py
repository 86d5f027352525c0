"""Patients."""

from __future__ import annotations

import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import Organization, Patient


def patient_create(
    *, organization: Organization, mrn: str, name: str, birth_date: datetime.date, sex: str
) -> Patient:
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

    duplicate = ValidationError({"mrn": [f"A patient with MRN {mrn} already exists in {organization.name}."]})
    if Patient.objects.filter(organization=organization, mrn=mrn).exists():
        raise duplicate
    patient = Patient(organization=organization, mrn=mrn, name=name, birth_date=birth_date, sex=sex)
    patient.full_clean(validate_constraints=False)
    try:
        # A concurrent request may insert the same MRN between the check and the insert.
        with transaction.atomic():
            patient.save()
    except IntegrityError:
        raise duplicate from None
    return patient

