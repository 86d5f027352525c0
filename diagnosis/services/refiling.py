"""Filing a slice uploaded for the wrong patient under the right one.

The scan uploaded in error is withdrawn and stays with the patient it was uploaded for, with its results,
reviews and access log, for the record. Its slice becomes a new scan of the right patient that names the
scan it came from and is diagnosed afresh. No review moves with it: a reading made with another patient's
record in view is no reading of this patient.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..models import Patient, Scan
from .scans import same_patient_id, scan_create
from .withdrawals import MAX_REASON, withdraw_locked

logger = logging.getLogger(__name__)


def scan_refile(*, scan: Scan, patient: Patient, user: AbstractBaseUser, reason: str = "") -> Scan:
    """File the scan's slice for ``patient`` as a new scan, queued for diagnosis, and return that scan.

    A scan not yet withdrawn is withdrawn in the same transaction, with ``reason``; for one already
    withdrawn its withdrawal says why, and ``reason`` is not used. The same people may as may withdraw it.
    Refused when the patient is the scan's own or of another organization, when the slice's DICOM header names
    another patient ID than their MRN (as its upload would be), when the slice already stands for that patient,
    and when an earlier filing of this scan still stands (file that one on instead).
    """
    membership = selectors.membership_of(user)
    if membership is None or membership.organization_id != scan.patient.organization_id:
        raise ValidationError({"scan": ["No such scan in your organization."]})
    if not selectors.scan_may_withdraw(user=user, scan=scan):
        raise PermissionDenied("Only the clinician who uploaded this scan or an administrator can file it for "
                               "another patient.")
    if patient.organization_id != scan.patient.organization_id:
        raise ValidationError({"patient": ["No such patient in your organization."]})
    if patient.pk == scan.patient_id:
        raise ValidationError({"patient": [
            f"This scan is already {patient.name}'s: choose the patient the slice was meant for."]})
    if scan.dicom_patient_id and settings.KIDNEYWEB_DICOM_PATIENT_ID_CHECK \
            and not same_patient_id(scan.dicom_patient_id, patient.mrn):
        # The rule its upload was held to: a header that names the first patient says the slice is theirs.
        raise ValidationError({"patient": [
            f"This slice came as DICOM whose header names patient ID {scan.dicom_patient_id!r}, but {patient.name}'s "
            f"MRN is {patient.mrn!r}: it cannot be filed for them. If the image itself is wrong, withdraw it "
            "without filing it."]})
    reason = " ".join((reason or "").split())
    with transaction.atomic():
        locked = Scan.objects.select_for_update(of=("self",)).select_related("patient").get(pk=scan.pk)
        if not locked.is_withdrawn:
            if not reason:
                raise ValidationError({"reason": [
                    "Say why the scan is withdrawn from this patient, e.g. \"uploaded for the wrong patient\"."]})
            if len(reason) > MAX_REASON:
                raise ValidationError({"reason": [
                    f"The reason is {len(reason)} characters long; the limit is {MAX_REASON}."]})
        standing = locked.refiled_copies.filter(withdrawn_at__isnull=True).select_related("patient").first()
        if standing is not None:
            raise ValidationError({"patient": [
                f"This slice is already filed for {standing.patient.name} as scan #{standing.pk}. If that was the "
                "wrong patient too, file that scan for the right one."]})
        there = (Scan.objects.filter(patient=patient, sha256=locked.sha256, withdrawn_at__isnull=True)
                 .order_by("uploaded_at", "id").first())
        if there is not None:
            raise ValidationError({"patient": [
                f"{patient.name} already has this slice as scan #{there.pk} (uploaded "
                f"{timezone.localtime(there.uploaded_at):%Y-%m-%d %H:%M}): withdraw this scan without filing it."]})
        try:
            with locked.image.open("rb") as handle:
                data = handle.read()
        except OSError:
            raise ValidationError({"scan": [
                "The stored image could not be read, so nothing was filed or withdrawn; try again later."]}) from None
        try:
            copy = scan_create(patient=patient, file=ContentFile(data, name=locked.original_filename),
                               uploaded_by=user, refiled_from=locked)
        except ValidationError as exc:
            # Checked when it was uploaded; only a stricter limit set since can refuse it now.
            raise ValidationError({"scan": [f"The slice cannot be filed again: {' '.join(exc.messages)}"]}) from None
        try:
            if not locked.is_withdrawn:
                withdraw_locked(scan=locked, user=user, reason=reason, refiled_as=copy)
        except BaseException:
            # The transaction undoes the copy's row; its stored file is not part of it.
            copy.image.storage.delete(copy.image.name)
            raise
    logger.info("Scan %s of patient %s filed for patient %s as scan %s by %s", locked.pk, locked.patient_id,
                patient.pk, copy.pk, user.get_username())
    return copy
