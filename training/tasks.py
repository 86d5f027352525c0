"""Celery tasks of the training app, on the `training` queue (CELERY_TASK_ROUTES): thin wrappers."""

from __future__ import annotations

import logging
import os

from celery import shared_task
from django.conf import settings

from diagnosis.models import ModelVersion

from . import services

logger = logging.getLogger(__name__)

# A pool child killed mid-run (out of memory, SIGKILL) must not be redelivered: the run would only be
# killed again. signals.py fails the run in the worker's main process instead.
@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=False,
    ignore_result=True,
    soft_time_limit=settings.KIDNEYWEB_TRAINING_TIME_LIMIT_SECONDS,
    time_limit=settings.KIDNEYWEB_TRAINING_TIME_LIMIT_SECONDS + 300,
)
def train_model(self, run_id: int) -> None:
    services.training_run_execute(run_id=run_id, worker_node=self.request.hostname or "", worker_pid=os.getpid())


@shared_task(acks_late=True, ignore_result=True, soft_time_limit=3600, time_limit=3900)
def evaluate_model_version(model_version_id: int) -> None:
    """Evaluate a version on the locked test series (for the promotion gate), once."""
    version = ModelVersion.objects.filter(pk=model_version_id).first()
    if version is None:
        logger.warning("Model version %s does not exist; nothing to evaluate.", model_version_id)
        return
    try:
        services.model_version_evaluate(model_version=version)
    except Exception as exc:
        # Kept for the gate, which then says why instead of that an evaluation is queued.
        logger.exception("Could not evaluate model version %s on the locked test series", version.name)
        services.model_version_evaluation_fail(model_version=version, error=exc)


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90)
def fail_orphaned_runs() -> None:
    """Beat sends this every KIDNEYWEB_TRAINING_SWEEP_SECONDS: a run whose worker died while nobody
    looked at the runs page would otherwise show "running" forever. Failing a run twice is a no-op,
    so a second beat (a second worker started with --beat) does no harm."""
    failed = services.training_runs_fail_orphaned()
    if failed:
        logger.warning("Marked training runs %s failed: their worker stopped during the run", failed)
