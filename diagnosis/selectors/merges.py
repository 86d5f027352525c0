"""Merged patient records: a person registered twice, whose duplicate record was merged into the other."""

from __future__ import annotations

import datetime
import re
import unicodedata

from django.db.models import Q

from ..models import Patient, PatientMerge, Scan
from .records import patient_record_ids


def patient_merges(*, patient: Patient) -> list[PatientMerge]:
    """Merges of this record into another and of others into it, undone ones included, newest first."""
    return list(PatientMerge.objects.filter(Q(duplicate=patient) | Q(into=patient)).select_related(
        "duplicate", "into", "merged_by", "undone_by").order_by("-merged_at", "-id"))


def patient_merge_standing(*, duplicate: Patient) -> PatientMerge | None:
    """The merge that made this record a duplicate of another, while it stands."""
    return PatientMerge.objects.filter(duplicate=duplicate, undone_at__isnull=True).select_related(
        "into", "merged_by").order_by("-merged_at", "-id").first()


def patient_former_mrns(*, patient: Patient) -> list[str]:
    """The MRNs of the records merged into this one: hospital systems may still send the person's slices
    under one of them."""
    ids = [pk for pk in patient_record_ids(patient=patient) if pk != patient.pk]
    return list(Patient.objects.filter(pk__in=ids).order_by("mrn").values_list("mrn", flat=True))


def patient_slices_on_both(*, duplicate: Patient, into: Patient) -> list[tuple[Scan, Scan]]:
    """Pairs of standing (not withdrawn) scans of the same slice, one on each record: merged, the person
    would have that slice on record twice."""
    theirs = {scan.sha256: scan for scan in Scan.objects.filter(patient=into, withdrawn_at__isnull=True)
              .order_by("-uploaded_at", "-id")}
    return [(scan, theirs[scan.sha256]) for scan in Scan.objects.filter(patient=duplicate, withdrawn_at__isnull=True)
            .order_by("uploaded_at", "id") if scan.sha256 in theirs]


def _name_words(name: str) -> set[str]:
    # Accents, case and punctuation differ between registrations of one person ("José" at the desk, "JOSE" from
    # an ambulance's system); a one-letter initial says too little.
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).casefold()
    return {word for word in re.split(r"[\W_]+", plain) if len(word) >= 2}


def patient_possible_duplicates(
    *, organization_id: int, name: str, birth_date: datetime.date, exclude: Patient | None = None
) -> list[Patient]:
    """Records in use with the same birth date and a name that shares a word with ``name``: perhaps the same
    person, registered before. Shown before a registration and on a record's page; a suggestion, never a rule."""
    words = _name_words(name)
    if not words:
        return []
    candidates = Patient.objects.filter(organization_id=organization_id, birth_date=birth_date, merged_into__isnull=True)
    if exclude is not None:
        candidates = candidates.exclude(pk=exclude.pk)
    return [patient for patient in candidates.order_by("name", "mrn", "id") if words & _name_words(patient.name)]
