"""Alerts raised when a model version does worse on an organization's reviewed slices than its card promised."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..models import ModelVersion, Organization, PerformanceAlert, Prediction, Scan
from .webhooks import model_below_card_notify, model_recovered_notify

logger = logging.getLogger(__name__)


def performance_alert_update(*, organization: Organization, model_version: ModelVersion) -> PerformanceAlert | None:
    """Raise, widen or clear the alert of the version in the organization after a review, by the shares that are
    below its card now; the alert open afterwards (None when it is not below).

    Only the active version is watched: an earlier version's results change nothing a clinician relies on.
    A new shortfall (the alert raised, or a share added to it) is notified as ``model.below_card``, its end as
    ``model.recovered``; a share that leaves an alert still open is recorded quietly."""
    if not model_version.is_active:
        return None
    with transaction.atomic():
        # Two reviews finishing together must not both raise an alert: the organization's row orders them. No key
        # update, so rows being written that refer to the organization (patients, notifications) do not wait.
        Organization.objects.select_for_update(no_key=True).filter(pk=organization.pk).first()
        alert = PerformanceAlert.objects.filter(organization=organization, model_version=model_version,
                                                cleared_at__isnull=True).first()
        performance = selectors.model_performance_in_use(organization=organization, model_version=model_version)
        below = [measure.name for measure in performance.below]
        if not below:
            if alert is not None:
                alert.cleared_at = timezone.now()
                alert.save(update_fields=["cleared_at"])
                model_recovered_notify(alert=alert)
                logger.info("%s is no longer below its card at %s", model_version.name, organization.name)
            return None
        if alert is None:
            alert = PerformanceAlert.objects.create(organization=organization, model_version=model_version, measures=below)
            news = True
        else:
            news = bool(set(below) - set(alert.measures))
            if below != alert.measures:
                alert.measures = below
                alert.save(update_fields=["measures"])
        if news:
            model_below_card_notify(alert=alert, performance=performance)
            logger.warning("%s is below its card at %s: %s", model_version.name, organization.name, ", ".join(below))
        return alert


def performance_alert_refresh(*, scan: Scan, after: str) -> None:
    """Judge again the active version if a finished result of it on this scan was reviewed: a review, a withdrawal
    and a restoral each change which readings count. ``after`` names the change for the log.

    A failure is logged and rolled back to its savepoint; it never undoes the clinician's change, and the next
    change judges the model again."""
    versions = ModelVersion.objects.filter(
        is_active=True, predictions__scan=scan, predictions__status=Prediction.Status.DONE,
        predictions__reviews__isnull=False).distinct()
    for version in versions:
        try:
            performance_alert_update(organization=scan.patient.organization, model_version=version)
        except Exception:
            logger.exception("Could not judge %s after %s of scan %s", version.name, after, scan.pk)
