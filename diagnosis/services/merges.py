"""Merging a duplicate patient record (one person registered twice) into the record that stays.

The duplicate's scans, with their results, reviews and heat maps, become the surviving record's: both records
were the same person's, so a reading made under either is a reading of them (unlike a slice filed from another
patient's record, ``refiling``). The duplicate stays, read-only and out of lists, so that its MRN, its
corrections and its access log still answer for what was done under it; a lookup by its MRN names the record
it went into. A merge made in error is undone: the scans it moved go back.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..models import Patient, PatientDistinct, PatientMerge, Scan
from .pacs_rejections import pacs_patient_changed
from .webhooks import patient_merged_notify, patient_unmerged_notify
from .withdrawals import cleaned_reason

logger = logging.getLogger(__name__)


def merged_message(patient: Patient) -> str:
    """The one sentence every refusal and banner uses for a record merged into another."""
    into = patient.merged_into
    return (f"The record with MRN {patient.mrn} was merged into {into.name}'s record (MRN {into.mrn}): "
            "the patient's scans are there.")


def check_not_merged(patient: Patient, *, field: str = "patient") -> None:
    if patient.merged_into_id is not None:
        raise ValidationError({field: [merged_message(patient)]}, code="merged")


def check_patient_admin(*, user: AbstractBaseUser, patient: Patient, action: str) -> None:
    membership = selectors.membership_of(user)
    if membership is None or membership.organization_id != patient.organization_id:
        raise ValidationError({"patient": ["No such patient in your organization."]})
    if not selectors.is_organization_admin(user):
        raise PermissionDenied(f"Only an administrator can {action}.")


def _lock(*pks: int) -> dict[int, Patient]:
    # Always in the order of their ids, so that two merges of the same two records cannot deadlock. FOR UPDATE
    # also waits for uploads in flight to either record (their scan rows hold a key-share lock on it).
    rows = Patient.objects.select_for_update(of=("self",)).select_related("merged_into").filter(
        pk__in=pks).order_by("pk")
    return {row.pk: row for row in rows}


def check_mergeable(*, duplicate: Patient, into: Patient) -> None:
    """Refuse, naming why, two records that cannot be merged as they stand: one already merged, details that
    name two people, or a slice on both. Run before asking for a confirmation, and again under the lock."""
    if into.organization_id != duplicate.organization_id:
        raise ValidationError({"into": ["No such patient in your organization."]})
    if into.pk == duplicate.pk:
        raise ValidationError({"into": [
            "A record cannot be merged into itself: choose the other record of this person."]})
    check_not_merged(duplicate)
    if into.merged_into_id is not None:
        raise ValidationError({"into": [
            f"The record with MRN {into.mrn} was merged into {into.merged_into.name}'s record (MRN "
            f"{into.merged_into.mrn}) already: merge into that one."]})
    if duplicate.birth_date != into.birth_date:
        raise ValidationError({"into": [
            f"The two records name different birth dates ({duplicate.birth_date.isoformat()} for MRN "
            f"{duplicate.mrn}, {into.birth_date.isoformat()} for MRN {into.mrn}). If they are one person, "
            "correct the wrong record first; nothing was merged."]})
    unknown = Patient.Sex.UNKNOWN
    if duplicate.sex != into.sex and unknown not in (duplicate.sex, into.sex):
        raise ValidationError({"into": [
            f"The two records name different sexes ({duplicate.get_sex_display().lower()} for MRN "
            f"{duplicate.mrn}, {into.get_sex_display().lower()} for MRN {into.mrn}). If they are one person, "
            "correct the wrong record first; nothing was merged."]})
    both = selectors.patient_slices_on_both(duplicate=duplicate, into=into)
    if both:
        pairs = ", ".join(f"#{mine.pk} and #{theirs.pk}" for mine, theirs in both)
        raise ValidationError({"into": [
            f"The same slice is on both records (scans {pairs}): merged, it would be on record twice. Withdraw "
            "one scan of each pair first; nothing was merged."]})


def patient_merge(*, duplicate: Patient, into: Patient, user: AbstractBaseUser, reason: str) -> PatientMerge:
    """Merge ``duplicate`` into ``into`` (the record that stays): the duplicate's scans move, and the duplicate
    is kept, read-only, pointing at ``into``, whose details stay as they are. For an administrator of the
    organization, with a reason.

    Refused, with nothing changed, when the records are one, of another organization or already merged, when
    their birth dates differ or their sexes differ (neither unknown), which would mean two people (correct the
    wrong record first), and when the same slice stands on both (withdraw one of the two scans first).
    """
    check_patient_admin(user=user, patient=duplicate, action="merge patient records")
    reason = cleaned_reason(reason, done="merged", example="registered twice, in the emergency department",
                            subject="the record")
    with transaction.atomic():
        rows = _lock(duplicate.pk, into.pk)
        duplicate, into = rows[duplicate.pk], rows[into.pk]
        check_mergeable(duplicate=duplicate, into=into)
        moved = list(Scan.objects.filter(patient=duplicate).order_by("pk").values_list("pk", flat=True))
        Scan.objects.filter(pk__in=moved).update(patient=into)
        duplicate.merged_into = into
        duplicate.save(update_fields=["merged_into"])
        if duplicate.training_opt_out:
            from .patients import training_opt_out_record  # patients imports this module

            # The person refused under the other record: their slices, now all here, stay out of training.
            training_opt_out_record(patient=into, user=user, opt_out=True)
        merge = PatientMerge.objects.create(duplicate=duplicate, into=into, merged_by=user, reason=reason,
                                            scans=moved)
        patient_merged_notify(merge=merge)
        pacs_patient_changed(scan_ids=moved, by=user, change=(
            f"the patient's record (MRN {duplicate.mrn}) was merged into MRN {into.mrn}"))
    logger.info("Patient %s merged into patient %s by %s (%d scans): %s", duplicate.pk, into.pk,
                user.get_username(), len(moved), reason)
    return merge


def patient_merge_undo(*, duplicate: Patient, user: AbstractBaseUser, reason: str) -> PatientMerge:
    """Undo the merge that made ``duplicate`` a duplicate: the scans it moved go back (those since withdrawn
    too, and with the reviews made meanwhile), and the record is listed again. Scans uploaded to the surviving
    record after the merge stay there. For an administrator, with a reason; refused while the surviving record
    is itself merged into a third one (undo that merge first)."""
    check_patient_admin(user=user, patient=duplicate, action="undo a merge")
    reason = cleaned_reason(reason, done="unmerged", example="two people with the same name and birth date",
                            subject="the record")
    merge = selectors.patient_merge_standing(duplicate=duplicate)
    if merge is None:
        raise ValidationError({"patient": ["This record is not merged into another."]})
    with transaction.atomic():
        rows = _lock(duplicate.pk, merge.into_id)
        duplicate, into = rows[duplicate.pk], rows[merge.into_id]
        merge = PatientMerge.objects.select_for_update().get(pk=merge.pk)
        if merge.undone_at is not None or duplicate.merged_into_id != into.pk:
            raise ValidationError({"patient": ["This merge was undone meanwhile."]})
        if into.merged_into_id is not None:
            raise ValidationError({"patient": [
                f"{into.name}'s record (MRN {into.mrn}) was merged into MRN {into.merged_into.mrn} since: undo that "
                "merge first."]})
        moved_back = list(Scan.objects.filter(pk__in=merge.scans, patient=into).order_by("pk")
                          .values_list("pk", flat=True))
        Scan.objects.filter(pk__in=moved_back).update(patient=duplicate)
        duplicate.merged_into = None
        duplicate.save(update_fields=["merged_into"])
        merge.undone_at, merge.undone_by, merge.undo_reason = timezone.now(), user, reason
        merge.save(update_fields=["undone_at", "undone_by", "undo_reason"])
        patient_unmerged_notify(merge=merge, moved_back=moved_back)
        pacs_patient_changed(scan_ids=moved_back, by=user, change=(
            f"the merge of the patient's record (MRN {duplicate.mrn}) into MRN {into.mrn} was undone"))
    logger.info("Merge of patient %s into patient %s undone by %s (%d scans back): %s", duplicate.pk, into.pk,
                user.get_username(), len(moved_back), reason)
    return merge


def _pair(*, patient: Patient, other: Patient, user: AbstractBaseUser, action: str) -> tuple[int, int]:
    """The two records' ids as a finding stores them (the smaller first), after the checks."""
    check_patient_admin(user=user, patient=patient, action=action)
    if other.organization_id != patient.organization_id or other.pk == patient.pk:
        raise ValidationError({"other": ["No such other patient in your organization."]})
    first, second = sorted((patient.pk, other.pk))
    return first, second


def patient_pair_mark_distinct(*, patient: Patient, other: Patient, user: AbstractBaseUser) -> PatientDistinct:
    """Record an administrator's finding that two records alike in birth date and name are two people, so that
    they are not suggested for merging again. Marking a pair again keeps the first finding."""
    first, second = _pair(patient=patient, other=other, user=user, action="say two records are two people")
    mark, created = PatientDistinct.objects.get_or_create(first_id=first, second_id=second,
                                                         defaults={"marked_by": user})
    if created:
        logger.info("Patients %s and %s marked as two people by %s", first, second, user.get_username())
    return mark


def patient_pair_unmark_distinct(*, patient: Patient, other: Patient, user: AbstractBaseUser) -> None:
    """Take back the finding that two records are two people (made in error): the pair is suggested again."""
    first, second = _pair(patient=patient, other=other, user=user,
                          action="take back that two records are two people")
    deleted, _ = PatientDistinct.objects.filter(first_id=first, second_id=second).delete()
    if deleted:
        logger.info("Patients %s and %s no longer marked as two people, by %s", first, second, user.get_username())
