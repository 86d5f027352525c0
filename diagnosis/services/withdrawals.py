"""Withdrawing a scan entered in error: uploaded for the wrong patient, or the wrong image.

Nothing is deleted. The scan keeps its image, results and reviews, for the record and the access log,
and is marked with who withdrew it, when and why; it leaves the worklist, the reviewer-agreement figures
and the reviewed scans exported for training, and takes no new diagnosis or review. A slice uploaded for
the wrong patient is filed for the right one as a new scan (``refiling.scan_refile``). A withdrawal made
by mistake is undone with a reason of its own; both stay in the scan's withdrawal history. The organization's
archive (PACS) is sent a rejection note for the results it was sent (``pacs_rejections``); restored, the scan's result is sent
to it again as a new instance.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import selectors
from ..models import Prediction, Scan, ScanWithdrawal
from .hl7_feed import hl7_result_send
from .pacs_rejections import pacs_rejection_send, pacs_restored_send
from .performance import performance_alert_refresh
from .webhooks import scan_restored_notify, scan_withdrawn_notify

logger = logging.getLogger(__name__)

MAX_REASON = 200


def withdrawn_message(scan: Scan) -> str:
    """The one sentence every refusal and banner uses for a withdrawn scan."""
    by = scan.withdrawn_by.get_username() if scan.withdrawn_by_id else "someone"
    return (f"This scan was withdrawn as entered in error by {by} on "
            f"{timezone.localtime(scan.withdrawn_at):%Y-%m-%d %H:%M}: {scan.withdrawal_reason}")


def check_not_withdrawn(scan: Scan) -> None:
    if scan.withdrawn_at is not None:
        raise ValidationError(withdrawn_message(scan), code="withdrawn")


def check_may_change(*, scan: Scan, user: AbstractBaseUser, action: str) -> None:
    """Withdrawing, restoring and filing elsewhere are for the clinician who uploaded the scan or an
    administrator of its organization; ``action`` completes "can ...", e.g. "withdraw it"."""
    membership = selectors.membership_of(user)
    if membership is None or membership.organization_id != scan.patient.organization_id:
        raise ValidationError({"scan": ["No such scan in your organization."]})
    if not selectors.scan_may_withdraw(user=user, scan=scan):
        raise PermissionDenied(f"Only the clinician who uploaded this scan or an administrator can {action}.")


def cleaned_reason(reason: str, *, done: str, example: str, subject: str = "the scan") -> str:
    """The reason with its white space evened out; refused when empty or too long."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise ValidationError({"reason": [f"Say why {subject} is {done}, e.g. \"{example}\"."]})
    if len(reason) > MAX_REASON:
        raise ValidationError({"reason": [f"The reason is {len(reason)} characters long; the limit is {MAX_REASON}."]})
    return reason


def scan_withdraw(*, scan: Scan, user: AbstractBaseUser, reason: str) -> Scan:
    """Withdraw the scan as entered in error, with the reason. Only the clinician who uploaded it or an
    administrator of its organization may; a diagnosis still pending is failed with that reason."""
    check_may_change(scan=scan, user=user, action="withdraw it")
    reason = cleaned_reason(reason, done="withdrawn", example="uploaded for the wrong patient")
    with transaction.atomic():
        scan = Scan.objects.select_for_update(of=("self",)).select_related("withdrawn_by").get(pk=scan.pk)
        check_not_withdrawn(scan)
        withdraw_locked(scan=scan, user=user, reason=reason)
    return scan


def withdraw_locked(*, scan: Scan, user: AbstractBaseUser, reason: str, refiled_as: Scan | None = None) -> None:
    """Withdraw a scan whose row the caller holds locked, after the caller's checks."""
    scan.withdrawn_at = timezone.now()
    scan.withdrawn_by = user
    scan.withdrawal_reason = reason
    scan.save(update_fields=["withdrawn_at", "withdrawn_by", "withdrawal_reason"])
    withdrawal = ScanWithdrawal.objects.create(scan=scan, withdrawn_at=scan.withdrawn_at, withdrawn_by=user,
                                               reason=reason)
    # A worker that finishes one of these later finds it final and leaves it so.
    Prediction.objects.filter(scan=scan, status__in=[Prediction.Status.QUEUED, Prediction.Status.RUNNING]).update(
        status=Prediction.Status.FAILED, finished_at=scan.withdrawn_at,
        failure_reason="Not diagnosed: the scan was withdrawn as entered in error.")
    scan_withdrawn_notify(scan=scan, refiled_as=refiled_as)
    hl7_result_send(scan=scan, event="scan.withdrawn")  # the record system marks what it filed as wrong
    # The archive is asked to hide the results it was sent; the page and the notification name them too.
    pacs_rejection_send(withdrawal=withdrawal)
    # Its readings no longer count for the model's performance in use.
    performance_alert_refresh(scan=scan, after="the withdrawal")
    logger.info("Scan %s withdrawn by %s: %s", scan.pk, user.get_username(), reason)


def scan_restore(*, scan: Scan, user: AbstractBaseUser, reason: str) -> Scan:
    """Undo a withdrawal made by mistake, with the reason: the scan returns to the worklist, the agreement
    figures and training. The same people may as may withdraw it. Refused while the same slice, uploaded
    again for the patient, is on record: the patient would have it twice. A diagnosis the withdrawal
    failed stays failed; "Diagnose again" asks for a new one."""
    check_may_change(scan=scan, user=user, action="restore it")
    reason = cleaned_reason(reason, done="restored", example="withdrawn by mistake instead of the scan before it")
    with transaction.atomic():
        scan = Scan.objects.select_for_update(of=("self",)).get(pk=scan.pk)
        if not scan.is_withdrawn:
            raise ValidationError({"reason": ["This scan is not withdrawn."]})
        again = selectors.scan_of_slice(patient_id=scan.patient_id, sha256=scan.sha256,
                                        instance_uid=scan.dicom_instance_uid, exclude=scan)
        if again is not None:
            raise _uploaded_again(again)
        copy = selectors.scan_refiling_standing(scan=scan)
        if copy is not None:
            raise ValidationError({"reason": [
                f"This slice was filed for {copy.patient.name} as scan #{copy.pk}: restored, it would be on record "
                "for two patients. Withdraw that one first if the slice is this patient's after all."]})
        now = timezone.now()
        ScanWithdrawal.objects.filter(scan=scan, restored_at__isnull=True).update(
            restored_at=now, restored_by=user, restore_reason=reason)
        scan.withdrawn_at = None
        scan.withdrawn_by = None
        scan.withdrawal_reason = ""
        scan.capture_generation += 1
        try:
            with transaction.atomic():
                scan.save(update_fields=["withdrawn_at", "withdrawn_by", "withdrawal_reason", "capture_generation"])
        except IntegrityError:
            # The slice was uploaded again while this was being restored (scan_slice_once_per_patient,
            # scan_instance_once_per_patient).
            again = selectors.scan_of_slice(patient_id=scan.patient_id, sha256=scan.sha256,
                                            instance_uid=scan.dicom_instance_uid, exclude=scan)
            if again is None:
                raise
            raise _uploaded_again(again) from None
        scan_restored_notify(scan=scan, reason=reason)
        hl7_result_send(scan=scan, event="scan.restored")
        pacs_restored_send(scan=scan)
        performance_alert_refresh(scan=scan, after="the restoral")
    logger.info("Scan %s restored by %s: %s", scan.pk, user.get_username(), reason)
    return scan


def _uploaded_again(again: Scan) -> ValidationError:
    return ValidationError({"reason": [
        f"The same slice was uploaded again for this patient as scan #{again.pk}: restored, it would be on "
        "record twice. Withdraw that one first if this one should stand."]})
