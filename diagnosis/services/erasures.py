"""Erasing a patient's data: consent withdrawn, or the end of a pilot.

Everything kidneyweb holds of the person goes: the record and those merged into it, their corrections, scans,
images, results, heat maps, reviews, whole-record exports, what was sent to the archive for them and the archive's
refusals naming them.
What stays names nobody: a ``PatientErasure`` (who erased how much, when and why) and the access log's entries,
which still say who opened an erased record when. Images are deleted from storage once the erasure is committed,
by the worker (its sweep tries again for any it could not delete), so a failure midway loses nothing.

The hospital's archive is sent a note (IHE IOCM, "Data Retention Policy Expired") asking it to delete the result
captures it was sent (``pacs_rejections.pacs_erasure_reject``); the note keeps the patient's details as the
captures were filed until the archive stored it. What kidneyweb cannot take back is named instead: an archive
without IOCM keeps its copies (the ``patient.erased`` notification lists their UIDs for the integration engine to
remove), a model already trained on reviewed slices keeps its weights, and a training export made before stays on
disk until exported again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .. import selectors
from ..dicom_uids import result_instance_uids_of
from ..models import (ClassHeatmap, DicomStoreRefusal, Organization, Patient, PatientAccess,
                      PatientErasure, PatientMerge, Prediction, RecordExport, Review, Scan)
from .merges import check_patient_admin, merged_message
from .pacs_rejections import pacs_erasure_reject
from .webhooks import patient_erased_notify
from .withdrawals import cleaned_reason

logger = logging.getLogger(__name__)

# An erasure whose images are still on disk this long after it was committed lost its task (the broker restarted).
FILES_LOST_AFTER = timedelta(minutes=15)


def erased_message(erasure: PatientErasure) -> str:
    """The one sentence every answer for a former record uses."""
    return (f"This patient's record was erased on {timezone.localtime(erasure.erased_at):%Y-%m-%d %H:%M} by "
            f"{erasure.erased_by_name}: {erasure.reason}")


def check_erasable(*, patient: Patient, user: AbstractBaseUser) -> None:
    """Refuse, naming why, an erasure that cannot be done as asked. Run before asking for a confirmation, and again
    under the lock."""
    check_patient_admin(user=user, patient=patient, action="erase a patient's record")
    if patient.merged_into_id is not None:
        raise ValidationError({"patient": [
            f"{merged_message(patient)} Erase that record: the records merged into it are erased with it."]})


def patient_erase(*, patient: Patient, user: AbstractBaseUser, reason: str, confirm_mrn: str) -> PatientErasure:
    """Erase the patient's record and every record merged into it, with all their scans, for an administrator of
    the organization, with a reason and the record's MRN typed again as confirmation.

    Refused, with nothing erased, for a record merged into another (erase that one), and when the MRN does not
    match. Scans of other patients that were filed from one of these scans keep their own data and lose only the
    link to it.
    """
    check_erasable(patient=patient, user=user)
    reason = cleaned_reason(reason, done="erased", example="consent withdrawn on 2026-12-01", subject="the record")
    if (confirm_mrn or "").strip() != patient.mrn.strip():
        raise ValidationError({"mrn": [
            "Type the record's MRN exactly as it is shown to confirm the erasure; nothing was erased."]})
    with transaction.atomic():
        # The record first: a merge into it waits for this lock, so the records merged into it stay those found
        # next.
        locked = Patient.objects.select_for_update().filter(pk=patient.pk).first()
        if locked is None:
            raise ValidationError({"patient": ["This record was erased meanwhile."]})
        check_erasable(patient=locked, user=user)
        ids = selectors.patient_record_ids(patient=locked)
        erasure = PatientErasure(organization_id=locked.organization_id, patient_id=locked.pk,
                                 merged_ids=[pk for pk in ids if pk != locked.pk], erased_by=user,
                                 erased_by_name=user.get_username(), reason=reason)
        erased = _erase_records(ids=ids, erasure=erasure, ask_archive=True)
        patient_erased_notify(erasure=erasure, scan_ids=erased.scan_ids, dicom_result_uids=erased.result_uids)
        transaction.on_commit(lambda: _enqueue_files_removal(erasure.pk))
    logger.info("Patient %s erased by %s (%d records, %d scans, %d files): %s", erasure.patient_id,
                user.get_username(), len(ids), erasure.scans, len(erasure.files), reason)
    return erasure


@dataclass(frozen=True)
class _Erased:
    scan_ids: list[int]
    result_uids: list[str]


def _erase_records(*, ids: list[int], erasure: PatientErasure, ask_archive: bool = False) -> _Erased:
    """Delete the records ``ids`` (those present) with everything of theirs, and save ``erasure`` with what it
    took: its counts and the files to delete once committed; with ``ask_archive``, queue the notes asking the
    archive to delete the captures it was sent. In the caller's transaction."""
    # The scans and results are locked as they are now, so that a diagnosis finishing meanwhile has either stored
    # its heat map (deleted here) or finds its row gone (and deletes the map itself).
    records = list(Patient.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    own, mistaken = selectors.scans_erased_with(record_ids=ids)
    scans = list(Scan.objects.select_for_update(of=("self",)).filter(pk__in=own | mistaken)
                 .select_related("patient__organization").order_by("pk"))
    scan_ids = [scan.pk for scan in scans]
    predictions = list(Prediction.objects.select_for_update().filter(scan_id__in=scan_ids))
    class_maps = list(ClassHeatmap.objects.select_for_update().filter(prediction__scan_id__in=scan_ids))
    erasure.files = [scan.image.name for scan in scans if scan.image]
    erasure.files += [prediction.heatmap.name for prediction in predictions if prediction.heatmap]
    erasure.files += [class_map.image.name for class_map in class_maps if class_map.image]
    # Whole-record exports go with the record; one being built finds its row gone and deletes what it wrote.
    exports = list(RecordExport.objects.select_for_update().filter(patient_id__in=ids))
    erasure.files += [export.file.name for export in exports if export.file]
    by_scan = result_instance_uids_of(scans=scans)
    result_uids = [uid for scan in scans for uid in by_scan[scan.pk]]
    erasure.scans = len(scans)
    erasure.reviews, erasure.archive_results = selectors.reviews_and_archive_results(scan_ids=scan_ids)
    erasure.save()
    if ask_archive:
        pacs_erasure_reject(scans=scans, erasure=erasure)

    PatientAccess.objects.filter(patient_id__in=ids).update(patient=None, scan=None, erasure=erasure)
    # Another patient's scan filed from one of these keeps its own image and readings; the links among these go too.
    Scan.objects.filter(refiled_from_id__in=scan_ids).update(refiled_from=None)
    if records:
        _refusals_naming(records=records, scan_ids=scan_ids).delete()
    PatientMerge.objects.filter(Q(duplicate_id__in=ids) | Q(into_id__in=ids)).delete()
    # Reviews protect the results they judged, and records the ones merged into them: their links go first.
    Review.objects.filter(scan_id__in=scan_ids).delete()
    Scan.objects.filter(pk__in=scan_ids).delete()
    # Records merged into these are among them, except in a restored backup older than an undone merge: there the
    # record merged meanwhile is kept, standing on its own again as it did when it was erased (with its scans back,
    # _return_unmerged_scans).
    Patient.objects.filter(Q(pk__in=ids) | Q(merged_into_id__in=ids)).update(merged_into=None)
    Patient.objects.filter(pk__in=ids).delete()
    return _Erased(scan_ids=scan_ids, result_uids=result_uids)


def _return_unmerged_scans(*, ids: list[int]) -> None:
    """In a restored backup older than the undoing of a merge into one of these records: the record merged then,
    not erased with them, gets back the scans the merge had moved, as the undoing gave them back before the
    erasure (they show that person, not the erased one). The record itself stands on its own again in
    ``_erase_records``."""
    for merge in PatientMerge.objects.filter(into_id__in=ids, undone_at=None).exclude(duplicate_id__in=ids):
        Scan.objects.filter(pk__in=merge.scans, patient_id__in=ids).update(patient_id=merge.duplicate_id)


def _refusals_naming(*, records: list[Patient], scan_ids: list[int]):
    # The archive's refusals resolved as one of these scans, and those whose PatientID names one of the records as
    # an upload's header is compared (services.same_patient_id: case, surrounding spaces and an all-digit number's
    # leading zeros aside), in one query however many refusals there are.
    named = Q()
    for mrn in {record.mrn.strip() for record in records}:
        named |= Q(patient_id__iregex=rf"^\s*{re.escape(mrn)}\s*$")
        if mrn.isdigit():
            named |= Q(patient_id__regex=rf"^\s*0*{int(mrn)}\s*$")
    return DicomStoreRefusal.objects.filter(organization_id=records[0].organization_id).filter(
        Q(resolved_as_id__in=scan_ids) | named)


def _enqueue_files_removal(erasure_id: int) -> None:
    from ..tasks import remove_erased_files

    try:
        remove_erased_files.apply_async(args=[erasure_id])
    except Exception:
        # The sweep sends it again (erasures_files_resend); the erasure itself stands.
        logger.exception("Could not queue the removal of erasure %s's files", erasure_id)


def erasure_files_remove(*, erasure_id: int) -> PatientErasure | None:
    """Delete the erased scans' images and heat maps from storage. Safe to run twice; raises OSError (for the task
    to retry) when storage fails, with the files deleted so far gone for good."""
    erasure = PatientErasure.objects.filter(pk=erasure_id).first()
    if erasure is None or erasure.files_removed_at is not None:
        return erasure
    for name in erasure.files:
        default_storage.delete(name)  # one already gone is no error
    logger.info("Erasure %s: %d files deleted", erasure.pk, len(erasure.files))
    erasure.files, erasure.files_removed_at = [], timezone.now()
    erasure.save(update_fields=["files", "files_removed_at"])
    return erasure


def erasures_files_resend(*, now=None) -> list[int]:
    """Queue again the removal of files of erasures whose task was lost; returns their ids."""
    now = now or timezone.now()
    lost = list(PatientErasure.objects.filter(files_removed_at__isnull=True, erased_at__lt=now - FILES_LOST_AFTER)
                .values_list("pk", flat=True))
    for erasure_id in lost:
        _enqueue_files_removal(erasure_id)
    return lost


@dataclass(frozen=True)
class ErasureNote:
    """An erasure as a restore carries it over: the backup restored may be older and hold the records again."""

    organization_slug: str
    patient_id: int
    merged_ids: list[int]
    erased_at: str
    erased_by_name: str
    reason: str
    scans: int
    reviews: int
    archive_results: int


def erasures_noted() -> list[ErasureNote]:
    """Every erasure this database holds, to carry into a backup restored in its place."""
    return [ErasureNote(organization_slug=e.organization.slug, patient_id=e.patient_id, merged_ids=list(e.merged_ids),
                        erased_at=e.erased_at.isoformat(), erased_by_name=e.erased_by_name, reason=e.reason,
                        scans=e.scans, reviews=e.reviews, archive_results=e.archive_results)
            for e in PatientErasure.objects.select_related("organization").order_by("erased_at", "pk")]


def erasures_reapply(*, notes: list[ErasureNote]) -> list[PatientErasure]:
    """Erase again, in a database just restored from a backup, the records erased after that backup was made, and
    keep the record of every erasure; returns the erasures that deleted something again, whose files the caller
    deletes once the backup's files are in place (``erasure_files_remove``). In the caller's transaction.

    An erasure the backup holds already is left as it is. One of an organization the backup does not hold has
    nothing to erase there and is not carried over. A notification is not sent again, nor are the notes asking the
    archive to delete the captures (the erasure sent them when it was made)."""
    User = get_user_model()
    erased_again = []
    for note in notes:
        if PatientErasure.objects.filter(patient_id=note.patient_id).exists():
            continue
        organization = Organization.objects.filter(slug=note.organization_slug).first()
        if organization is None:
            continue
        ids = [note.patient_id, *note.merged_ids]
        present = Patient.objects.filter(pk__in=ids, organization=organization).exists()
        erasure = PatientErasure(
            organization=organization, patient_id=note.patient_id, merged_ids=note.merged_ids,
            erased_at=datetime.fromisoformat(note.erased_at),
            erased_by=User.objects.filter(**{User.USERNAME_FIELD: note.erased_by_name}).first(),
            erased_by_name=note.erased_by_name, reason=note.reason)
        if not present:
            # Registered after the backup was made: nothing to erase, and the erasure stays on record as it was.
            erasure.scans, erasure.reviews, erasure.archive_results = note.scans, note.reviews, note.archive_results
            erasure.files_removed_at = timezone.now()
            erasure.save()
            continue
        # Only this organization's rows: ids are never reused, but a record id of another organization is not this
        # erasure's to delete.
        ids = list(Patient.objects.filter(pk__in=ids, organization=organization).values_list("pk", flat=True))
        _return_unmerged_scans(ids=ids)
        _erase_records(ids=ids, erasure=erasure)
        # The record says what the erasure took, not what was left of it in the backup.
        erasure.scans, erasure.reviews, erasure.archive_results = note.scans, note.reviews, note.archive_results
        erasure.save(update_fields=["scans", "reviews", "archive_results"])
        erased_again.append(erasure)
        logger.warning("Restore: record %s erased again (erased on %s by %s after the backup was made)",
                       note.patient_id, note.erased_at, note.erased_by_name)
    return erased_again
