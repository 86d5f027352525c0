"""Merged patient records: a person registered twice, whose duplicate record was merged into the other."""

from __future__ import annotations

import datetime
import re
import unicodedata

from difflib import SequenceMatcher
from itertools import combinations

from django.db.models import Count, Q

from ..models import Patient, PatientDistinct, PatientMerge, Scan
from .records import patient_record_ids

# Of difflib's ratio between two names' words, in order: one or two letters typed wrong in a name of ten or more.
SIMILAR_SPELLING = 0.8


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
    """Pairs of standing (not withdrawn) scans of the same slice (the same pixels, or the same DICOM instance sent
    with other pixels), one on each record: merged, the person would have that slice on record twice."""
    by_pixels: dict[str, Scan] = {}
    by_instance: dict[str, Scan] = {}
    # Oldest last, so that each key keeps the record's earliest scan of it.
    for scan in Scan.objects.filter(patient=into, withdrawn_at__isnull=True).order_by("-uploaded_at", "-id"):
        by_pixels[scan.sha256] = scan
        if scan.dicom_instance_uid:
            by_instance[scan.dicom_instance_uid] = scan
    pairs = []
    for scan in Scan.objects.filter(patient=duplicate, withdrawn_at__isnull=True).order_by("uploaded_at", "id"):
        theirs = by_pixels.get(scan.sha256) or by_instance.get(scan.dicom_instance_uid or None)
        if theirs is not None:
            pairs.append((scan, theirs))
    return pairs


def _name_words(name: str) -> set[str]:
    # Accents, case and punctuation differ between registrations of one person ("José" at the desk, "JOSE" from
    # an ambulance's system); a one-letter initial says too little.
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).casefold()
    return {word for word in re.split(r"[\W_]+", plain) if len(word) >= 2}


def _similar_names(a: set[str], b: set[str]) -> bool:
    """Names that may be one person's: two words in common, one name's words all in the other's ("Grace Hopper",
    "Grace B. Hopper"), or a close spelling ("Jon Smith", "John Smith"). One shared first name is not enough."""
    if not a or not b:
        return False
    if len(a & b) >= 2 or a <= b or b <= a:
        return True
    spelling = SequenceMatcher(None, " ".join(sorted(a)), " ".join(sorted(b)))
    # The quick bounds first: most pairs of one birth date are plainly two people.
    return spelling.real_quick_ratio() >= SIMILAR_SPELLING and spelling.quick_ratio() >= SIMILAR_SPELLING \
        and spelling.ratio() >= SIMILAR_SPELLING


def patient_possible_duplicates(
    *, organization_id: int, name: str, birth_date: datetime.date, exclude: Patient | None = None
) -> list[Patient]:
    """Records in use with the same birth date and a similar name: perhaps the same person, registered before.
    Shown before a registration and on a record's page; a suggestion, never a rule."""
    words = _name_words(name)
    if not words:
        return []
    candidates = Patient.objects.filter(organization_id=organization_id, birth_date=birth_date, merged_into__isnull=True)
    if exclude is not None:
        two_people = {other.pk for other, _ in patient_found_distinct(patient=exclude)}
        candidates = candidates.exclude(pk__in=two_people | {exclude.pk})
    return [patient for patient in candidates.order_by("name", "mrn", "id")
            if _similar_names(words, _name_words(patient.name))]


def patient_found_distinct(*, patient: Patient) -> list[tuple[Patient, PatientDistinct]]:
    """The records an administrator found to be another person than this one, with that finding, newest first."""
    marks = PatientDistinct.objects.filter(Q(first=patient) | Q(second=patient)).select_related(
        "first", "second", "marked_by").order_by("-marked_at", "-id")
    return [(mark.second if mark.first_id == patient.pk else mark.first, mark) for mark in marks]


def patient_duplicate_pairs(*, organization_id: int, limit: int = 200) -> list[tuple[Patient, Patient]]:
    """Pairs of records in use that may be one person (as ``patient_possible_duplicates`` judges), the older
    record first, sorted by the older one's name; at most ``limit``."""
    in_use = Patient.objects.filter(organization_id=organization_id, merged_into__isnull=True)
    shared_dates = in_use.values("birth_date").annotate(records=Count("id")).filter(records__gt=1).values("birth_date")
    # Plain rows first: a large hospital has tens of thousands of records sharing a birth date with another.
    by_date: dict[datetime.date, list[tuple[int, set[str]]]] = {}
    for pk, birth_date, name in in_use.filter(birth_date__in=shared_dates).order_by(
            "birth_date", "created_at", "id").values_list("pk", "birth_date", "name"):
        by_date.setdefault(birth_date, []).append((pk, _name_words(name)))
    two_people = set(PatientDistinct.objects.filter(first__organization_id=organization_id).values_list(
        "first_id", "second_id"))
    found = [(a, b) for records in by_date.values() for (a, words_a), (b, words_b) in combinations(records, 2)
             if (min(a, b), max(a, b)) not in two_people and _similar_names(words_a, words_b)]
    patients = Patient.objects.in_bulk({pk for pair in found for pk in pair})
    pairs = [(patients[a], patients[b]) for a, b in found]
    pairs.sort(key=lambda pair: (pair[0].name.casefold(), pair[0].pk, pair[1].pk))
    return pairs[:limit]
