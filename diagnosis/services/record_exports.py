"""A patient's whole record as one ZIP, built by a worker and handed over as a download.

A record of a few slices takes a second; one of thousands (an archive that sends whole series) takes minutes, more
than a web request may last. So an administrator asks for it, the worker builds it (on a queue and a worker of
its own, ``exports``, so that no diagnosis waits behind it, nor it behind a training run) and the page, or the
API, says when it is ready. Each download is recorded in the access log. The file is a copy of patient data: it is deleted after
``KIDNEYWEB_RECORD_EXPORT_KEEP_HOURS``, and with the record if it is erased.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from ..models import Patient, PatientAccess, RecordExport, record_export_upload_to
from .access import patient_access_record
from .merges import check_patient_admin
from .sweeps import resend_stale

logger = logging.getLogger(__name__)

# An export still queued this long after it was asked for (or sent again) lost its task: the broker restarted.
LOST_AFTER = timedelta(minutes=15)


class RecordExportUnavailable(Exception):
    """The export cannot be downloaded (not ready, failed or expired); ``gone`` when it never will be again."""

    def __init__(self, message: str, *, gone: bool) -> None:
        super().__init__(message)
        self.message, self.gone = message, gone


def _enqueue(export_id: int) -> None:
    from ..tasks import build_record_export

    try:
        build_record_export.apply_async(args=[export_id])
    except Exception:
        # The sweep sends it again (record_exports_sweep); the request itself stands.
        logger.exception("Could not queue record export %s", export_id)


def record_export_request(*, patient: Patient, user: AbstractBaseUser, base_url: str) -> RecordExport:
    """Ask the worker for the patient's whole record as a ZIP, for an administrator; ``base_url`` is the site's
    address the PDF reports and FHIR Bundles link to. Asking again while the same person's export of the record is
    still being built answers that one."""
    check_patient_admin(user=user, patient=patient, action="export a patient's whole record")
    with transaction.atomic():
        # The record's row: two requests at once make one export.
        Patient.objects.select_for_update().filter(pk=patient.pk).first()
        pending = RecordExport.objects.filter(
            patient=patient, requested_by=user,
            status__in=RecordExport.PENDING).first()
        if pending is not None:
            return pending
        export = RecordExport.objects.create(organization_id=patient.organization_id, patient=patient,
                                             requested_by=user, base_url=base_url[:300])
        transaction.on_commit(partial(_enqueue, export.pk))
    return export


def record_export_build(*, export_id: int) -> RecordExport | None:
    """Build the export's ZIP into storage. Safe to run twice: one finished, failed or expired is left alone (one
    found being built is built again: its worker stopped and the broker handed the task on). A failure is
    recorded on the export with its reason."""
    from ..record_export import patient_record_zip

    with transaction.atomic():
        export = (RecordExport.objects.select_for_update().select_related("patient", "requested_by")
                  .filter(pk=export_id).first())
        if export is None or not export.is_pending:
            return export
        export.status, export.started_at = RecordExport.Status.RUNNING, timezone.now()
        export.save(update_fields=["status", "started_at"])
    name = ""
    try:
        with tempfile.TemporaryFile() as spool:
            summary = patient_record_zip(patient=export.patient, user=export.requested_by, base_url=export.base_url,
                                         into=spool)
            size = spool.tell()
            spool.seek(0)
            name = default_storage.save(record_export_upload_to(export, "record.zip"), File(spool))
    except Exception as exc:  # noqa: BLE001 - any failure ends the export, with its reason for the administrator
        logger.exception("Record export %s failed", export_id)
        if name:
            default_storage.delete(name)
        return record_export_fail(export_id=export_id, reason=_reason(exc))
    with transaction.atomic():
        current = RecordExport.objects.select_for_update().filter(pk=export_id).first()
        if current is None or current.status != RecordExport.Status.RUNNING:
            # Erased (or given up) while it was built: what was written is nobody's to keep.
            default_storage.delete(name)
            return current
        now = timezone.now()
        current.status, current.file, current.size, current.scans = RecordExport.Status.DONE, name, size, summary.scans
        current.finished_at = now
        current.expires_at = now + timedelta(hours=settings.KIDNEYWEB_RECORD_EXPORT_KEEP_HOURS)
        current.save(update_fields=["status", "file", "size", "scans", "finished_at", "expires_at"])
    logger.info("Record export %s: %d scans, %d bytes", export_id, summary.scans, size)
    return current


def _reason(exc: Exception) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, SoftTimeLimitExceeded):
        return (f"It took longer than {settings.KIDNEYWEB_RECORD_EXPORT_SECONDS // 60} minutes and was stopped "
                "(KIDNEYWEB_RECORD_EXPORT_SECONDS).")
    if isinstance(exc, OSError):
        return f"The storage failed while it was written ({exc.__class__.__name__}): ask for it again."
    return f"It could not be built ({exc.__class__.__name__}): ask for it again, or tell your administrator."


def record_export_fail(*, export_id: int, reason: str) -> RecordExport | None:
    with transaction.atomic():
        export = RecordExport.objects.select_for_update().filter(pk=export_id).first()
        if export is None or not export.is_pending:
            return export
        export.status, export.error, export.finished_at = RecordExport.Status.FAILED, reason[:300], timezone.now()
        export.save(update_fields=["status", "error", "finished_at"])
    return export


def record_export_open(*, export: RecordExport, user: AbstractBaseUser, channel: str) -> File:
    """The export's ZIP, opened for ``user`` to download, with the download recorded in the access log; raises
    RecordExportUnavailable, with why, when there is none to download."""
    if export.is_pending:
        raise RecordExportUnavailable("The export is still being built.", gone=False)
    if export.status == RecordExport.Status.FAILED:
        raise RecordExportUnavailable(f"The export failed: {export.error}", gone=True)
    if export.status == RecordExport.Status.EXPIRED or (export.expires_at and export.expires_at <= timezone.now()):
        raise RecordExportUnavailable(
            f"The export was deleted {settings.KIDNEYWEB_RECORD_EXPORT_KEEP_HOURS} hours after it was built, as "
            "every copy of patient data is: ask for a new one.", gone=True)
    try:
        handle = export.file.open("rb")
    except OSError as exc:
        raise RecordExportUnavailable("The export's file could not be read: ask for a new one.", gone=True) from exc
    patient_access_record(user=user, patient=export.patient, what=PatientAccess.What.EXPORT, channel=channel)
    return handle


def record_export_filename(export: RecordExport) -> str:
    return f"kidneyweb-record-{export.patient_id}-{timezone.localtime(export.finished_at):%Y%m%d}.zip"


def record_exports_sweep(*, now=None) -> tuple[list[int], list[int]]:
    """Delete the files of exports past their time, and queue again those whose task was lost; returns the ids of
    both. An export whose worker stopped mid-way and whose task is not coming back fails after the time limit."""
    now = now or timezone.now()
    expired = []
    for export in RecordExport.objects.filter(status=RecordExport.Status.DONE, expires_at__lte=now):
        if export.file:
            default_storage.delete(export.file.name)
        updated = RecordExport.objects.filter(pk=export.pk, status=RecordExport.Status.DONE).update(
            status=RecordExport.Status.EXPIRED, file="")
        if updated:
            expired.append(export.pk)
    stuck = now - timedelta(seconds=settings.KIDNEYWEB_RECORD_EXPORT_SECONDS) - LOST_AFTER
    for export_id in RecordExport.objects.filter(status=RecordExport.Status.RUNNING,
                                                 started_at__lt=stuck).values_list("pk", flat=True):
        record_export_fail(export_id=export_id, reason="The worker building it stopped: ask for it again.")
    lost = (RecordExport.objects.filter(status=RecordExport.Status.QUEUED, requested_at__lt=now - LOST_AFTER)
            .exclude(resent_at__gte=now - LOST_AFTER))
    resent = resend_stale(lost, now=now, enqueue=_enqueue)
    return expired, resent

