"""Celery tasks: thin wrappers that translate between the broker and services."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from . import services

logger = logging.getLogger(__name__)

# Failures that may pass on their own (database restart, storage hiccup): retried with backoff. Any
# other failure is final and services.prediction_run has already recorded it.
TRANSIENT_ERRORS = (DatabaseError, services.ScanImageUnavailable)
MAX_RETRIES = 3
# The name /healthz looks up: the worker that diagnoses and runs Celery beat.
INFERENCE_WORKER = "inference"


# The queue ("inference") comes from CELERY_TASK_ROUTES; Celery deprecates a per-task queue attribute.
@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
    soft_time_limit=300,
    time_limit=360,
    ignore_result=True,
)
def predict_scan(self, prediction_id: int) -> None:
    try:
        services.prediction_run(prediction_id=prediction_id)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            attempts = self.request.retries + 1
            cause = str(exc) if isinstance(exc, services.ScanImageUnavailable) else (
                f"The database did not answer ({exc.__class__.__name__})."
            )
            services.prediction_fail(prediction_id=prediction_id, reason=f"Gave up after {attempts} attempts. {cause}")
            return
        logger.warning("Prediction %s: %r; retrying", prediction_id, exc)
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=300, time_limit=360, ignore_result=True)
def explain_class(class_heatmap_id: int) -> None:
    """Compute a Grad-CAM map someone asked for; failures are recorded on the map, never retried here."""
    services.class_heatmap_run(class_heatmap_id=class_heatmap_id)


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def resend_lost_predictions() -> None:
    """Beat sends this every KIDNEYWEB_PREDICTION_SWEEP_SECONDS; see services.predictions_resend_lost
    (and webhooks_resend_lost, pacs_resend_lost and hl7_resend_lost, for result notifications, results for the
    archive and for the record system,
    api_tokens_expiring_notify, for tokens about to expire, erasures_files_resend, for erased images still
    on disk, record_exports_sweep, for whole-record exports past their time or whose task was lost, and
    pacs_erasure_give_up_due, for erasure notes an archive did not store within KIDNEYWEB_ERASURE_ARCHIVE_DAYS).
    Its running also shows /healthz that the inference worker (which runs beat) is alive."""
    services.worker_heartbeat_record(name=INFERENCE_WORKER)
    services.predictions_resend_lost(older_than=timedelta(seconds=settings.KIDNEYWEB_PREDICTION_STALE_SECONDS))
    services.webhooks_resend_lost()
    services.pacs_resend_lost()
    services.hl7_resend_lost()
    services.api_tokens_expiring_notify()
    services.erasures_files_resend()
    services.record_exports_sweep()
    services.pacs_erasure_give_up_due()


@shared_task(ignore_result=True, soft_time_limit=240, time_limit=300)
def judge_inputs(organization_id: int | None = None) -> None:
    """Beat sends this every KIDNEYWEB_INPUTS_JUDGE_SECONDS for every organization, and services.inputs_judge_soon
    for one after an out-of-scope result; see services.inputs_alerts_judge."""
    services.inputs_alerts_judge(organization_id=organization_id)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, soft_time_limit=60,
             time_limit=90, ignore_result=True)
def deliver_webhook(self, delivery_id: int) -> None:
    """Send one result notification; services.webhook_deliver counts the attempts and gives up itself."""
    try:
        services.webhook_deliver(delivery_id=delivery_id)
    except services.WebhookNotDelivered as exc:
        # 10 s, 20 s, 40 s, 80 s, 160 s: about five minutes for a receiver that restarts.
        raise self.retry(exc=exc, countdown=10 * 2 ** self.request.retries) from exc


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, soft_time_limit=60,
             time_limit=90, ignore_result=True)
def deliver_to_pacs(self, delivery_id: int) -> None:
    """Send one AI result to the organization's archive; services.pacs_deliver counts the attempts and gives up
    itself."""
    try:
        services.pacs_deliver(delivery_id=delivery_id)
    except services.PacsNotDelivered as exc:
        # As for notifications: about five minutes for an archive that restarts.
        raise self.retry(exc=exc, countdown=10 * 2 ** self.request.retries) from exc


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, soft_time_limit=60,
             time_limit=90, ignore_result=True)
def deliver_hl7(self, delivery_id: int) -> None:
    """Send one change of a scan's result to the record system; services.hl7_deliver counts the attempts and gives
    up itself."""
    try:
        services.hl7_deliver(delivery_id=delivery_id)
    except services.Hl7NotDelivered as exc:
        raise self.retry(exc=exc, countdown=10 * 2 ** self.request.retries) from exc


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5, soft_time_limit=240,
             time_limit=300, ignore_result=True)
def remove_erased_files(self, erasure_id: int) -> None:
    """Delete an erased record's images from storage; storage that fails is tried again, then by the sweep."""
    try:
        services.erasure_files_remove(erasure_id=erasure_id)
    except OSError as exc:
        if self.request.retries >= self.max_retries:
            logger.error("Erasure %s: files not deleted after %d attempts (%r); the sweep tries again",
                         erasure_id, self.request.retries + 1, exc)
            return
        raise self.retry(exc=exc, countdown=10 * 2 ** self.request.retries) from exc


# The time limits are read when the worker imports this module: KIDNEYWEB_RECORD_EXPORT_SECONDS.
@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=settings.KIDNEYWEB_RECORD_EXPORT_SECONDS,
             time_limit=settings.KIDNEYWEB_RECORD_EXPORT_SECONDS + 60, ignore_result=True)
def build_record_export(export_id: int) -> None:
    """Build a patient's whole record as a ZIP; a failure is recorded on the export, never retried here (the
    administrator asks again)."""
    services.record_export_build(export_id=export_id)
