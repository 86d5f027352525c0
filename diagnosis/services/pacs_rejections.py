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

from functools import partial

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..dicom_uids import capture_uids, erasure_rejection_uids, rejection_uids
from ..models import Organization, PacsDelivery, Patient, PatientErasure, Scan, ScanWithdrawal
from .pacs import archive_of, enqueue_delivery, pacs_result_send


def _reject(*, scan: Scan, organization: Organization, description: str, withdrawal: ScanWithdrawal | None = None,
            unless_filed_as: tuple[str, ...] | None = None) -> PacsDelivery | None:
    """Queue the note rejecting the scan's captures of its current generation that were sent, if any was (and, with
    ``unless_filed_as``, any of those names the patient otherwise); with the scan's row locked by the caller."""
    from ..dicom_export import capture_patient

    # Locked (and read after any lock taken), so that a capture being sent at this moment has counted its attempt
    # before this reads it; one whose task comes after finds the scan withdrawn or replaced and stays unsent.
    captures = list(PacsDelivery.objects.select_for_update(of=("self",)).filter(
        scan=scan, kind=PacsDelivery.Kind.CAPTURE, generation=scan.capture_generation).select_related(
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
        rejected=[{"series": capture_uids(scan, capture.prediction, capture.review)[0],
                   "instance": capture.sop_instance_uid} for capture in sent],
        filed_as=list(filed_as), sop_instance_uid=rejection_uids(scan, scan.capture_generation)[1])
    transaction.on_commit(partial(enqueue_delivery, delivery.pk))
    return delivery


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
        scan__in=with_study, kind=PacsDelivery.Kind.CAPTURE).select_related("prediction__model_version")
        .order_by("created_at", "id"))
    rejected = {capture["instance"] for note in PacsDelivery.objects.filter(
        scan__in=with_study, kind=PacsDelivery.Kind.REJECTION, status=PacsDelivery.Status.DELIVERED)
        for capture in note.rejected}
    description = (f"AI results of a patient whose data was erased in kidneyweb on "
                   f"{timezone.localtime(erasure.erased_at):%Y-%m-%d %H:%M} (erasure #{erasure.pk}): the archive is "
                   "asked to delete them.")
    notes = []
    for scan in with_study:
        by_patient: dict[tuple[str, ...], list[PacsDelivery]] = {}
        for capture in captures:
            if capture.scan_id == scan.pk and (capture.attempts or capture.filed_as) \
                    and capture.sop_instance_uid not in rejected:
                filed_as = tuple(capture.filed_as) if capture.filed_as else capture_patient(scan)
                by_patient.setdefault(filed_as, []).append(capture)
        for index, (filed_as, sent) in enumerate(by_patient.items()):
            series_uid, instance_uid = erasure_rejection_uids(scan, erasure.pk, index)
            notes.append(PacsDelivery.objects.create(
                organization=organization, scan=None, erasure=erasure, kind=PacsDelivery.Kind.REJECTION,
                generation=scan.capture_generation, url=organization.pacs_url, description=description,
                rejected=[{"series": capture_uids(scan, capture.prediction, capture.review)[0],
                           "instance": capture.sop_instance_uid} for capture in sent],
                filed_as=list(filed_as), sop_instance_uid=instance_uid,
                filed_in=filed_study(scan, series_uid=series_uid, instance_uid=instance_uid).as_json()))
    for note in notes:
        transaction.on_commit(partial(enqueue_delivery, note.pk))
    return notes
