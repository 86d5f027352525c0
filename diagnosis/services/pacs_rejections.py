"""Captures the archive (PACS) should no longer show, rejected there by a note (IHE IOCM, ``dicom_rejection``):

- a scan withdrawn as entered in error: its captures are rejected; restored, its current one is sent again;
- a patient whose details were corrected, or whose records were merged (or the merge undone): the captures name
  the patient as they no longer are, so they are rejected and the current one is sent again, naming them as now;
- a patient whose data was erased: every capture the archive may hold that no stored note rejected yet, as "Data
  Retention Policy Expired" (for the archive to delete them); the note outlives the scan.

A capture sent again is a new instance (the scan's ``capture_generation`` moves on, and is part of its UIDs), since an
archive that rejected the earlier ones refuses them if they come again. The note names every capture of the
generation sent at least once (an attempt that timed out may still have been stored), under the patient as they name
them, and goes like a result: retried, sent again by an administrator.
"""

from __future__ import annotations

import datetime
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..dicom_uids import capture_uids, erasure_rejection_uids, rejection_uids, report_uids
from ..models import Organization, PacsDelivery, Patient, PatientErasure, Scan, ScanWithdrawal
from .pacs import archive_of, enqueue_delivery, pacs_result_send
from .webhooks import erasure_archive_given_up_notify


def _reject(*, scan: Scan, organization: Organization, description: str, withdrawal: ScanWithdrawal | None = None,
            unless_filed_as: tuple[str, ...] | None = None) -> PacsDelivery | None:
    """Queue the note rejecting the scan's captures of its current generation that were sent, if any was (and, with
    ``unless_filed_as``, any of those names the patient otherwise); with the scan's row locked by the caller."""
    from ..dicom_export import capture_patient

    # Locked (and read after any lock taken), so that a capture being sent at this moment has counted its attempt
    # before this reads it; one whose task comes after finds the scan withdrawn or replaced and stays unsent.
    captures = list(PacsDelivery.objects.select_for_update(of=("self",)).filter(
        scan=scan, kind__in=PacsDelivery.RESULTS, generation=scan.capture_generation).select_related(
        "prediction__model_version").order_by("created_at", "id"))
    # Sent at least once (filed_as is recorded as it leaves, and kept when an administrator sends it again).
    sent = [capture for capture in captures if capture.attempts or capture.filed_as]
    if not sent or (unless_filed_as is not None
                    and all(tuple(capture.filed_as) == tuple(unless_filed_as) for capture in sent)):
        return None
    # Under the patient as the archive was given them: the newest capture's, or as now for one still on its way.
    filed_as = next((capture.filed_as for capture in reversed(sent) if capture.filed_as), None) or capture_patient(scan)
    delivery = PacsDelivery.objects.create(
        organization=organization, scan=scan, kind=PacsDelivery.Kind.REJECTION, withdrawal=withdrawal,
        generation=scan.capture_generation, url=organization.pacs_url, description=description,
        rejected=[_rejected(scan, capture) for capture in sent],
        filed_as=list(filed_as), sop_instance_uid=rejection_uids(scan, scan.capture_generation)[1])
    transaction.on_commit(partial(enqueue_delivery, delivery.pk))
    return delivery


def _rejected(scan: Scan, sent: PacsDelivery) -> dict[str, str]:
    """What a note names of a capture or report it rejects: its series, instance and SOP class."""
    from ..dicom_export import SECONDARY_CAPTURE
    from ..dicom_report import COMPREHENSIVE_SR

    report = sent.kind == PacsDelivery.Kind.REPORT
    series = (report_uids if report else capture_uids)(scan, sent.prediction, sent.review)[0]
    return {"series": series, "instance": sent.sop_instance_uid,
            "class": COMPREHENSIVE_SR if report else SECONDARY_CAPTURE}


def _by(user: AbstractBaseUser) -> str:
    return user.get_full_name() or user.get_username()


def pacs_rejection_send(*, withdrawal: ScanWithdrawal) -> PacsDelivery | None:
    """Queue the note rejecting the captures the archive was sent of the scan just withdrawn (``withdrawal``), when
    any was sent. Called in the transaction that withdraws it, with the scan's row locked."""
    scan = withdrawal.scan
    organization = archive_of(scan)
    if organization is None:
        return None
    description = (f"AI results withdrawn in kidneyweb as entered in error by {_by(withdrawal.withdrawn_by)} on "
                   f"{timezone.localtime(withdrawal.withdrawn_at):%Y-%m-%d %H:%M}: {withdrawal.reason}")
    return _reject(scan=scan, organization=organization, description=description, withdrawal=withdrawal)


def _send_current(scan: Scan) -> PacsDelivery | None:
    from ..dicom_export import current_review

    prediction = scan.latest_prediction
    if prediction is None:
        return None
    return pacs_result_send(prediction=prediction, review=current_review(scan, prediction))


def pacs_restored_send(*, scan: Scan) -> PacsDelivery | None:
    """Queue the current capture of a scan whose withdrawal was undone (its ``capture_generation`` moved on, so it is
    a new instance: the archive may have rejected the earlier ones)."""
    return _send_current(scan)


def pacs_patient_changed(*, change: str, by: AbstractBaseUser, patient: Patient | None = None,
                         scan_ids: list[int] | None = None) -> int:
    """After a change to the patient of these scans (the patient's, or those of ``scan_ids``), reject the captures
    sent to the archive that name them as they no longer are, and send the current ones again, naming them as now.
    ``change`` says what changed, e.g. "the patient's name was corrected". Called in the transaction that changed
    them; returns how many scans' captures are replaced."""
    from ..dicom_export import capture_patient

    scans = Scan.objects.filter(withdrawn_at=None).exclude(dicom_study_uid="")
    scans = scans.filter(patient=patient) if patient is not None else scans.filter(pk__in=scan_ids or [])
    ids = list(scans.filter(pacs_deliveries__kind=PacsDelivery.Kind.CAPTURE,
                            pacs_deliveries__generation=F("capture_generation")).distinct().values_list("pk", flat=True))
    replaced = 0
    now = timezone.localtime()
    for scan_id in sorted(ids):
        scan = Scan.objects.select_for_update(of=("self",)).select_related("patient").get(pk=scan_id)
        organization = archive_of(scan)
        if organization is None or scan.is_withdrawn:
            continue
        description = (f"AI results replaced in kidneyweb by new instances naming the patient as now: {change} by "
                       f"{_by(by)} on {now:%Y-%m-%d %H:%M}.")
        if _reject(scan=scan, organization=organization, description=description,
                   unless_filed_as=capture_patient(scan)) is None:
            continue
        scan.capture_generation += 1
        scan.save(update_fields=["capture_generation"])
        _send_current(scan)
        replaced += 1
    return replaced


def pacs_erasure_reject(*, scans: list[Scan], erasure: PatientErasure) -> list[PacsDelivery]:
    """Queue the notes asking the archive to delete the captures it was sent of these scans, about to be erased
    (``erasure``, saved): every capture sent at least once, of any generation, that no note the archive stored
    rejects already; one note per scan and patient they were filed under. Called in the erasure's transaction,
    with the scans locked and before they are deleted; returns the notes queued."""
    from ..dicom_export import capture_patient
    from ..dicom_rejection import filed_study

    with_study = [scan for scan in scans if scan.dicom_study_uid]
    if not with_study:
        return []
    organization = archive_of(with_study[0])
    if organization is None:
        return []
    # Locked as _reject does: a capture leaving now has counted its attempt, and one whose task comes after finds
    # its row gone.
    captures = list(PacsDelivery.objects.select_for_update(of=("self",)).filter(
        scan__in=with_study, kind__in=PacsDelivery.RESULTS).select_related("prediction__model_version", "review")
        .order_by("created_at", "id"))
    rejected = {capture["instance"] for note in PacsDelivery.objects.filter(
        scan__in=with_study, kind=PacsDelivery.Kind.REJECTION, status=PacsDelivery.Status.DELIVERED)
        for capture in note.rejected}
    description = (f"AI results of a patient whose data was erased in kidneyweb on "
                   f"{timezone.localtime(erasure.erased_at):%Y-%m-%d %H:%M} (erasure #{erasure.pk}): the archive is "
                   "asked to delete them.")
    notes = []
    of_scan: dict[int, list[PacsDelivery]] = {}
    for capture in captures:
        of_scan.setdefault(capture.scan_id, []).append(capture)
    for scan in with_study:
        by_patient: dict[tuple[str, ...], list[PacsDelivery]] = {}
        for capture in of_scan.get(scan.pk, []):
            if (capture.attempts or capture.filed_as) and capture.sop_instance_uid not in rejected:
                filed_as = tuple(capture.filed_as) if capture.filed_as else capture_patient(scan)
                by_patient.setdefault(filed_as, []).append(capture)
        for index, (filed_as, sent) in enumerate(by_patient.items()):
            series_uid, instance_uid = erasure_rejection_uids(scan, erasure.pk, index)
            notes.append(PacsDelivery(
                organization=organization, scan=None, erasure=erasure, kind=PacsDelivery.Kind.REJECTION,
                generation=scan.capture_generation, url=organization.pacs_url, description=description,
                rejected=[_rejected(scan, capture) for capture in sent],
                filed_as=list(filed_as), sop_instance_uid=instance_uid,
                filed_in=filed_study(scan, series_uid=series_uid, instance_uid=instance_uid).as_json()))
    notes = PacsDelivery.objects.bulk_create(notes)
    for note in notes:
        transaction.on_commit(partial(enqueue_delivery, note.pk))
    return notes


@transaction.atomic
def pacs_erasure_give_up(*, erasure: PatientErasure, by: AbstractBaseUser | None,
                         now: datetime.datetime | None = None) -> PatientErasure:
    """Stop asking the archive to delete an erased patient's results, and forget the patient's details (name, ID,
    birth date, sex, study) its unstored notes kept to name them: after that, kidneyweb keeps nothing of the person,
    and the archive may keep those results (someone deletes them there by hand). ``by`` None: the time limit did it
    (``pacs_erasure_give_up_due``). An administrator may only give up notes the archive refused or did not answer:
    one still being sent is waited for."""
    now = now or timezone.now()
    erasure = PatientErasure.objects.select_for_update().get(pk=erasure.pk)
    if erasure.archive_given_up_at is not None:
        raise ValidationError(f"Asking the archive was already given up on "
                              f"{timezone.localtime(erasure.archive_given_up_at):%Y-%m-%d %H:%M}.")
    unstored = list(PacsDelivery.objects.select_for_update().filter(erasure=erasure).exclude(
        status=PacsDelivery.Status.DELIVERED))
    if not unstored:
        raise ValidationError("Nothing to give up: the archive stored every note of this erasure, or it was sent "
                              "none.")
    if by is not None and any(note.status == PacsDelivery.Status.PENDING for note in unstored):
        raise ValidationError("A note of this erasure is still being sent to the archive: wait for its answer "
                              "(a few minutes), then give up if it was not stored.")
    who = _by(by) if by is not None else ""
    reason = (f"Given up by {who}" if who else
              f"Given up {settings.KIDNEYWEB_ERASURE_ARCHIVE_DAYS} days after the erasure")
    reason += ": the patient's details it needed were forgotten; the archive may keep these results."
    PacsDelivery.objects.filter(pk__in=[note.pk for note in unstored]).update(
        status=PacsDelivery.Status.FAILED, filed_as=[], filed_in={}, last_error=reason[:300])
    erasure.archive_given_up_at, erasure.archive_given_up_by = now, who
    erasure.save(update_fields=["archive_given_up_at", "archive_given_up_by"])
    erasure_archive_given_up_notify(erasure=erasure, dicom_result_uids=[
        capture["instance"] for note in unstored for capture in note.rejected])
    return erasure


def pacs_erasure_give_up_due(*, now: datetime.datetime | None = None) -> list[int]:
    """Give up, for every erasure older than KIDNEYWEB_ERASURE_ARCHIVE_DAYS, the notes its archive has not stored,
    so that an archive that never answers does not keep the person's details here for ever. Returns the erasures'
    ids."""
    now = now or timezone.now()
    unstored = PacsDelivery.objects.filter(erasure__isnull=False).exclude(status=PacsDelivery.Status.DELIVERED)
    due = PatientErasure.objects.filter(
        archive_given_up_at=None, erased_at__lt=now - datetime.timedelta(days=settings.KIDNEYWEB_ERASURE_ARCHIVE_DAYS),
        pk__in=unstored.values("erasure_id")).values_list("pk", flat=True)
    given_up = []
    for pk in due:
        try:
            pacs_erasure_give_up(erasure=PatientErasure(pk=pk), by=None, now=now)
        except ValidationError:
            continue  # stored since the query
        given_up.append(pk)
    return given_up
