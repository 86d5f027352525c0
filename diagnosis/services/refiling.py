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
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..models import Patient, Scan
from .merges import check_not_merged
from .scans import names_patient, scan_create
from .withdrawals import check_may_change, cleaned_reason, withdraw_locked

logger = logging.getLogger(__name__)


def scan_refile(*, scan: Scan, patient: Patient, user: AbstractBaseUser, reason: str = "") -> Scan:
    """File the scan's slice for ``patient`` as a new scan, queued for diagnosis, and return that scan.

    A scan not yet withdrawn is withdrawn in the same transaction, with ``reason``; for one already
    withdrawn its withdrawal says why, and ``reason`` is not used. The same people may as may withdraw it.
    Refused when the patient is the scan's own or of another organization, when the slice's DICOM header names
    another patient ID than their MRN (as its upload would be), when the slice already stands for that patient,
    and when an earlier filing of this scan still stands (file that one on instead).
    """
    check_may_change(scan=scan, user=user, action="file it for another patient")
    if patient.organization_id != scan.patient.organization_id:
        raise ValidationError({"patient": ["No such patient in your organization."]})
    check_not_merged(patient)
    if patient.pk == scan.patient_id:
        raise ValidationError({"patient": [
            f"This scan is already {patient.name}'s: choose the patient the slice was meant for."]})
    if scan.dicom_patient_id and settings.KIDNEYWEB_DICOM_PATIENT_ID_CHECK \
            and not names_patient(scan.dicom_patient_id, patient):
        # The rule its upload was held to: a header that names the first patient says the slice is theirs.
        raise ValidationError({"patient": [
            f"This slice came as DICOM whose header names patient ID {scan.dicom_patient_id!r}, but {patient.name}'s "
            f"MRN is {patient.mrn!r}: it cannot be filed for them. If the image itself is wrong, withdraw it "
            "without filing it."]})
    with transaction.atomic():
        locked = Scan.objects.select_for_update(of=("self",)).select_related("patient").get(pk=scan.pk)
        if not locked.is_withdrawn:
            reason = cleaned_reason(reason, done="withdrawn from this patient", example="uploaded for the wrong patient")
        standing = selectors.scan_refiling_standing(scan=locked)
        if standing is not None:
            raise ValidationError({"patient": [
                f"This slice is already filed for {standing.patient.name} as scan #{standing.pk}. If that was the "
                "wrong patient too, file that scan for the right one."]})
        there = selectors.scan_of_slice(patient_id=patient.pk, sha256=locked.sha256,
                                        instance_uid=locked.dicom_instance_uid)
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
