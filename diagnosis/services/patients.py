"""Patients."""

from __future__ import annotations

import datetime
import logging

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import selectors
from ..models import Organization, Patient, PatientChange
from .merges import merged_message
from .pacs_rejections import pacs_patient_changed

logger = logging.getLogger(__name__)


EARLIEST_BIRTH_DATE = datetime.date(1900, 1, 1)


def birth_date_error(birth_date: datetime.date | None, *, stored: datetime.date | None = None) -> str | None:
    """Why a birth date cannot be right, or None; a date kept as ``stored`` is not checked again."""
    if not birth_date or birth_date == stored:
        return None
    if birth_date > timezone.localdate():
        return "The birth date is in the future."
    if birth_date < EARLIEST_BIRTH_DATE:
        # A mistyped year (0198, 1850) would otherwise stay in the record and on every report.
        return f"The birth date {birth_date.isoformat()} is before {EARLIEST_BIRTH_DATE.year}; check the year."
    return None


def _validated(
    *, mrn: str, name: str, birth_date: datetime.date, sex: str, stored_birth_date: datetime.date | None = None
) -> tuple[str, str]:
    """Clean MRN and name, or raise ValidationError naming each bad field. A birth date kept as stored is
    not checked again: a record made before a check existed must stay correctable."""
    mrn, name = (mrn or "").strip(), (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not mrn:
        errors["mrn"] = ["The MRN is required."]
    if not name:
        errors["name"] = ["The name is required."]
    date_error = birth_date_error(birth_date, stored=stored_birth_date)
    if date_error:
        errors["birth_date"] = [date_error]
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


class PatientChangedMeanwhile(Exception):
    """The patient's details changed after the editor loaded them; nothing was written."""

    def __init__(self, current: Patient, changed_by: str | None) -> None:
        self.current = current
        who = changed_by or "someone else"
        super().__init__(
            f"While you were editing, {who} changed this patient's details: now MRN {current.mrn}, "
            f"name {current.name}, born {current.birth_date.isoformat()}, sex {current.get_sex_display().lower()}. "
            "Nothing was saved. Check the values and save again."
        )


def patient_training_use_set(*, patient: Patient, user: AbstractBaseUser, allowed: bool) -> Patient:
    """Record whether the patient lets their reviewed slices train the model (a consent for secondary use given,
    refused or withdrawn), as any member of their organization hears it. From then on a training export leaves
    them out, or takes them again; a training already running keeps what it exported. The change is kept with
    the corrections (who, when, from what to what). Refused for a record merged into another: set it there."""
    membership = selectors.membership_of(user)
    if membership is None or membership.organization_id != patient.organization_id:
        raise ValidationError({"patient": ["No such patient in your organization."]})
    with transaction.atomic():
        stored = Patient.objects.select_for_update(of=("self",)).select_related("merged_into").get(pk=patient.pk)
        if stored.merged_into_id is not None:
            raise ValidationError({"patient": [f"{merged_message(stored)} Record the patient's wish there."]})
        opt_out = not allowed
        if not training_opt_out_record(patient=stored, user=user, opt_out=opt_out):
            return stored
    logger.info("Patient %s: slices %s for training, recorded by %s", stored.pk,
                "refused" if opt_out else "allowed", user.get_username())
    return stored


def training_opt_out_record(*, patient: Patient, user: AbstractBaseUser, opt_out: bool) -> bool:
    """Set the record's (locked by the caller) refusal of training use, kept with the corrections; False when it was
    set so already."""
    if patient.training_opt_out == opt_out:
        return False
    patient.training_opt_out = opt_out
    patient.save(update_fields=["training_opt_out"])
    PatientChange.objects.create(patient=patient, changed_by=user, before={"training_opt_out": not opt_out},
                                 after={"training_opt_out": opt_out})
    return True


PATIENT_FIELDS = ("mrn", "name", "birth_date", "sex")
FIELD_NAMES = {"mrn": "MRN", "name": "name", "birth_date": "birth date", "sex": "sex"}


def patient_update(
    *,
    patient: Patient,
    changed_by: AbstractBaseUser,
    mrn: str | None = None,
    name: str | None = None,
    birth_date: datetime.date | None = None,
    sex: str | None = None,
    expected_version: str | None = None,
) -> Patient:
    """Correct a patient's details (a mistyped name or MRN); the scans and their results stay theirs.

    A value left None keeps the stored one, read under the row's lock, so a correction of the name
    cannot put back an MRN a colleague corrected a moment ago. With ``expected_version`` (the
    ``selectors.patient_version`` the editor saw) any change made meanwhile refuses the whole edit
    with PatientChangedMeanwhile. Nothing is written unless every value is valid and the MRN stays
    unique in the organization. Each correction is recorded with who made it and the old and new
    values of the changed fields. Returns the patient as stored; the object passed in is left as it was.
    """
    given = {"mrn": mrn, "name": name, "birth_date": birth_date, "sex": sex}
    with transaction.atomic():
        stored = Patient.objects.select_for_update(of=("self",)).select_related("organization", "merged_into").get(
            pk=patient.pk)
        if stored.merged_into_id is not None:
            # Its details are what the hospital's systems knew it by; the record that stays is corrected instead.
            raise ValidationError(f"{merged_message(stored)} Correct the details there.")
        if expected_version is not None and expected_version != selectors.patient_version(patient=stored):
            last = PatientChange.objects.filter(patient=stored).select_related("changed_by").order_by(
                "-changed_at", "-id").first()
            raise PatientChangedMeanwhile(stored, last.changed_by.get_username() if last else None)
        original = {field: getattr(stored, field) for field in PATIENT_FIELDS}
        wanted = {field: original[field] if given[field] is None else given[field] for field in PATIENT_FIELDS}
        wanted["mrn"], wanted["name"] = _validated(**wanted, stored_birth_date=original["birth_date"])
        changed = [field for field, value in wanted.items() if value != original[field]]
        if not changed:
            return stored
        for field in changed:
            setattr(stored, field, wanted[field])
        _save_unique(stored)
        PatientChange.objects.create(patient=stored, changed_by=changed_by,
                                     before=_as_json(original, changed), after=_as_json(wanted, changed))
        named = [FIELD_NAMES[field] for field in changed]
        pacs_patient_changed(patient=stored, by=changed_by, change=(
            f"the patient's {', '.join(named[:-1]) + ' and ' if len(named) > 1 else ''}{named[-1]} "
            f"{'were' if len(named) > 1 else 'was'} corrected"))
    return stored
