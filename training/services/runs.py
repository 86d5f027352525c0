"""Starting, cancelling and failing training runs, and failing the runs whose worker died."""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from diagnosis.models import Organization

from .. import params as run_params
from .. import selectors
from ..models import TrainingRun

logger = logging.getLogger(__name__)

MAX_FAILURE_REASON = 2000


class TrainingRunConflict(Exception):
    """Another run is queued or running; only one runs at a time per deployment.

    ``visible`` is false when the run belongs to another organization than the one asking: the message
    then names neither the run nor who started it.
    """

    def __init__(self, current: TrainingRun | None, *, visible: bool = True) -> None:
        self.current = current
        self.visible = visible
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if self.current is None:
            return "Another training run was started at the same moment. Only one run at a time; try again when it ends."
        if not self.visible:
            return (
                f"A training run of another organization is {self.current.get_status_display().lower()}. "
                "Only one run at a time on this deployment: try again when it has ended."
            )
        who = self.current.requested_by.get_username() if self.current.requested_by_id else "someone"
        return (
            f"Training run {self.current.pk} (started by {who}) is {self.current.get_status_display().lower()}. "
            "Only one run at a time: wait for it to finish or cancel it, then start a new one."
        )

    def __str__(self) -> str:
        return self.message


class TrainingRunFinished(Exception):
    """The run has already ended, so it cannot be cancelled."""

    def __init__(self, run: TrainingRun) -> None:
        self.run = run
        super().__init__(f"Training run {run.pk} has already ended ({run.get_status_display().lower()}).")


def _current_run() -> TrainingRun | None:
    return TrainingRun.objects.filter(is_current=True).select_related("requested_by").first()


def _conflict(current: TrainingRun | None, organization: Organization | None) -> TrainingRunConflict:
    # Without an organization the caller is the deployment's own (the Django admin), who sees every run.
    visible = current is None or organization is None or selectors.training_run_is_visible(
        run=current, organization=organization)
    return TrainingRunConflict(current, visible=visible)


def _enqueue(run_id: int) -> None:
    from ..tasks import train_model

    try:
        train_model.apply_async(args=[run_id])
    except Exception as exc:
        logger.exception("Could not queue training run %s", run_id)
        training_run_fail(
            run_id=run_id,
            reason=f"The run could not be queued (the task broker did not answer: {exc.__class__.__name__}). "
            "Start it again when the service is back.",
        )


def training_run_start(
    *,
    requested_by: AbstractBaseUser,
    data: str = TrainingRun.Data.DEVELOPER,
    preset: str = "standard",
    overrides: dict[str, Any] | None = None,
    organization: Organization | None = None,
) -> TrainingRun:
    """Queue a training run on the training worker, unless one is already queued or running.

    Raises ValidationError for bad parameters or data choices and TrainingRunConflict when a run is
    in progress: the database's partial unique constraint decides, so two simultaneous requests
    cannot both start one.
    """
    if data not in TrainingRun.Data.values:
        raise ValidationError({"data": [f"Unknown data {data!r}; choose one of {', '.join(TrainingRun.Data.values)}."]})
    if data != TrainingRun.Data.DEVELOPER and organization is None:
        raise ValidationError({"data": ["Reviewed scans belong to an organization; this account has none."]})
    try:
        clean, resolved = run_params.resolve(preset=preset, overrides=overrides)
    except run_params.ParamsError as exc:
        field = "preset" if preset not in run_params.PRESETS else "params"
        raise ValidationError({field: [str(exc)]}) from None

    # A run whose worker died must not block every new run until someone notices.
    training_runs_fail_orphaned()
    current = _current_run()
    if current is not None:
        raise _conflict(current, organization)
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                data=data,
                preset=preset,
                overrides=clean,
                params=resolved.to_dict(),
                organization=organization,
                requested_by=requested_by,
                epochs=resolved.train.epochs + (resolved.train.fine_tune_epochs if resolved.train.weights else 0),
            )
            transaction.on_commit(partial(_enqueue, run.pk))
    except IntegrityError:
        raise _conflict(_current_run(), organization) from None
    logger.info("Training run %s queued by %s (%s data, preset %s, %s)", run.pk, requested_by.get_username(),
                data, preset, clean or "no overrides")
    return run


def _finish(run: TrainingRun, status: str, *, reason: str = "") -> None:
    """Set a final status on a locked run."""
    run.status = status
    run.is_current = False
    run.finished_at = timezone.now()
    fields = ["status", "is_current", "finished_at", "eta_seconds"]
    run.eta_seconds = None
    if reason:
        run.failure_reason = reason[:MAX_FAILURE_REASON]
        fields.append("failure_reason")
    run.save(update_fields=fields)


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """A queued run ends at once; a running one stops at its next epoch end (or stage) and ends cancelled."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if run.is_final:
            raise TrainingRunFinished(run)
        if run.status == TrainingRun.Status.QUEUED:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
            _finish(run, TrainingRun.Status.CANCELLED, reason="Cancelled before it started.")
        elif not run.cancel_requested:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
    logger.info("Cancellation of training run %s requested", run.pk)
    return run


def training_run_fail(*, run_id: int, reason: str) -> TrainingRun | None:
    """Mark the run failed with a reason people can read, unless it already ended."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_final:
            return run
        _finish(run, TrainingRun.Status.FAILED, reason=reason)
    logger.warning("Training run %s failed: %s", run_id, reason)
    return run


def _process_is_gone(run: TrainingRun) -> bool:
    """True when the run's worker process lived on this machine and no longer exists."""
    host = run.worker_node.rpartition("@")[2]
    if not run.worker_pid or host != socket.gethostname():
        return False
    try:
        os.kill(run.worker_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def orphan_reason(run: TrainingRun, *, restarted_node: str | None = None, now=None) -> str:
    """Why a running run can no longer be running, or "" when it may well be."""
    now = now or timezone.now()
    if restarted_node and run.worker_node == restarted_node:
        return (f"The worker {restarted_node} stopped during the run (it was restarted); "
                "the run cannot resume. Start it again.")
    if _process_is_gone(run):
        return (f"The worker process running it (pid {run.worker_pid}) stopped during the run, "
                "e.g. killed or out of memory. Start it again.")
    stale = timedelta(seconds=settings.KIDNEYWEB_TRAINING_STALE_SECONDS)
    last_sign = run.heartbeat_at or run.started_at
    if last_sign is not None and now - last_sign > stale:
        return (f"No sign of life from its worker ({run.worker_node or 'unknown'}) for "
                f"{round((now - last_sign).total_seconds())} s: the worker stopped during the run. Start it again.")
    return ""


def training_runs_fail_orphaned(*, restarted_node: str | None = None) -> list[int]:
    """Fail every running run whose worker is gone; ``restarted_node`` is a worker that just started,
    so none of its runs can still be running. Returns the ids of the runs it failed."""
    failed = []
    for run in TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING):
        reason = orphan_reason(run, restarted_node=restarted_node)
        if reason and training_run_fail(run_id=run.pk, reason=reason) is not None:
            failed.append(run.pk)
    return failed
