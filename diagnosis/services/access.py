"""The access log of patient data: who opened which record, scan, image or report."""

from __future__ import annotations

import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.utils import timezone

from ..models import Patient, PatientAccess, Scan

# An API client polling a scan for its result, or a clinician reloading a page, opens the same thing
# many times a minute; one entry per minute says as much and keeps the log readable.
REPEAT_WINDOW = datetime.timedelta(seconds=60)
# A page that shows images (the patient's record with its thumbnails, a scan with its heat maps) is logged
# when it opens; the images it then loads are that same opening for this long.
PAGE_WINDOW = datetime.timedelta(minutes=10)


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


def scan_image_access_record(*, user: AbstractBaseUser, scan: Scan, channel: str) -> PatientAccess | None:
    """Log that the user fetched a scan's image or a heat map of it.

    On the web, one opening of a page loads many images: the patient's record shows a thumbnail of every
    scan, and a scan page its image and heat maps. Those pages are logged as they open, so an image the
    same user fetches within 10 minutes of such a page is not logged again. One fetched without it (a
    typed or scripted address) is logged on its own, so that no image leaves without a trace.
    """
    if channel == PatientAccess.Channel.WEB:
        shown_by_a_page = PatientAccess.objects.filter(
            Q(what=PatientAccess.What.PATIENT) | Q(what=PatientAccess.What.SCAN, scan=scan),
            user=user, patient_id=scan.patient_id, channel=PatientAccess.Channel.WEB,
            at__gt=timezone.now() - PAGE_WINDOW,
        ).exists()
        if shown_by_a_page:
            return None
    return patient_access_record(user=user, patient=scan.patient, scan=scan, what=PatientAccess.What.IMAGE,
                                 channel=channel)
