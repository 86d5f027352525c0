"""The access log of patient data: who opened which record, scan, image or report."""

from __future__ import annotations

import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from ..models import Patient, PatientAccess, Scan

# An API client polling a scan for its result, or a clinician reloading a page, opens the same thing
# many times a minute; one entry per minute says as much and keeps the log readable.
REPEAT_WINDOW = datetime.timedelta(seconds=60)


def patient_access_record(
    *, user: AbstractBaseUser, patient: Patient, what: str, channel: str, scan: Scan | None = None
) -> PatientAccess | None:
    """Log that the user opened this; None when the same opening was logged within the last minute."""
    if what not in PatientAccess.What.values or channel not in PatientAccess.Channel.values:
        raise ValueError(f"unknown access {what!r} by {channel!r}")
    now = timezone.now()
    repeated = PatientAccess.objects.filter(
        patient=patient, scan=scan, user=user, what=what, channel=channel, at__gt=now - REPEAT_WINDOW
    ).exists()
    if repeated:
        return None
    return PatientAccess.objects.create(patient=patient, scan=scan, user=user, what=what, channel=channel, at=now)
