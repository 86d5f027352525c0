"""Alerts raised when a model version does worse on an organization's reviewed slices than its card promised, or
is sent more images unlike its training data than its card expects."""

from __future__ import annotations

import datetime
import logging

from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..models import InputsAlert, ModelVersion, Organization, PerformanceAlert, Prediction, Scan
from ..selectors.performance import ABOVE, TOO_FEW
from .webhooks import (
    model_below_card_notify, model_inputs_unusual_notify, model_inputs_usual_notify, model_recovered_notify,
)

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


def inputs_alert_update(
    *, organization: Organization, model_version: ModelVersion, today: datetime.date | None = None
) -> InputsAlert | None:
    """Raise or end the organization's alert of unusual uploads for the version, by its out-of-scope share in the
    newest weeks (selectors.model_inputs_in_use); the alert open afterwards (None when the share is not above).

    Only the active version is watched, and only while its card says what share to expect: an alert of any other
    ends. Raising is notified as ``model.inputs_unusual``, ending as ``model.inputs_usual`` with why it ended; new
    counts while it stays open are recorded quietly."""
    with transaction.atomic():
        # Two judgements at once (a slow sweep overtaken by the next) must not both raise: the organization's row
        # orders them, as it does for reviews.
        Organization.objects.select_for_update(no_key=True).filter(pk=organization.pk).first()
        alert = InputsAlert.objects.filter(organization=organization, model_version=model_version,
                                           cleared_at__isnull=True).first()
        watched = model_version.is_active and selectors.card_out_of_scope_share(model_version=model_version) is not None
        inputs = (selectors.model_inputs_in_use(organization=organization, model_version=model_version, today=today)
                  if watched else None)
        if inputs is not None and inputs.verdict == ABOVE:
            if alert is None:
                alert = InputsAlert.objects.create(organization=organization, model_version=model_version,
                                                   out_of_scope=inputs.out_of_scope, diagnosed=inputs.diagnosed)
                model_inputs_unusual_notify(alert=alert, inputs=inputs)
                logger.warning("%s: %d of %d recent results at %s out of scope, above its card's %.1f%%",
                               model_version.name, inputs.out_of_scope, inputs.diagnosed, organization.name,
                               100 * (inputs.expected or 0))
            elif (alert.out_of_scope, alert.diagnosed) != (inputs.out_of_scope, inputs.diagnosed):
                alert.out_of_scope, alert.diagnosed = inputs.out_of_scope, inputs.diagnosed
                alert.save(update_fields=["out_of_scope", "diagnosed"])
            return alert
        if alert is not None:
            if inputs is None:
                alert.ended = InputsAlert.Ended.NOT_ACTIVE if not model_version.is_active else InputsAlert.Ended.USUAL
            else:
                alert.ended = InputsAlert.Ended.TOO_FEW if inputs.verdict == TOO_FEW else InputsAlert.Ended.USUAL
                alert.out_of_scope, alert.diagnosed = inputs.out_of_scope, inputs.diagnosed
            alert.cleared_at = timezone.now()
            alert.save(update_fields=["ended", "cleared_at", "out_of_scope", "diagnosed"])
            model_inputs_usual_notify(alert=alert, inputs=inputs)
            logger.info("%s: uploads at %s no longer unusual (%s)", model_version.name, organization.name, alert.ended)
        return None


def inputs_alerts_judge(*, today: datetime.date | None = None, organization_id: int | None = None) -> None:
    """Judge the uploads of every organization (or only of ``organization_id``) for the active version, and end
    the open alerts of versions no longer watched. Celery beat runs this on a schedule as well as after results
    (inputs_judge_soon): the weeks counted move with the calendar, so an alert must also end when nothing more is
    uploaded.

    One organization's failure is logged and does not stop the others; the next run judges it again."""
    active = selectors.model_version_active()
    organizations_judged = Organization.objects.all()
    open_alerts = InputsAlert.objects.filter(cleared_at__isnull=True)
    if organization_id is not None:
        organizations_judged = organizations_judged.filter(pk=organization_id)
        open_alerts = open_alerts.filter(organization_id=organization_id)
    judged: set[tuple[int, int]] = set()
    if active is not None and selectors.card_out_of_scope_share(model_version=active) is not None:
        judged = {(pk, active.pk) for pk in organizations_judged.values_list("pk", flat=True)}
    judged |= set(open_alerts.values_list("organization_id", "model_version_id"))
    organizations = Organization.objects.in_bulk({pk for pk, _ in judged})
    versions = ModelVersion.objects.in_bulk({pk for _, pk in judged})
    for organization_id, version_id in sorted(judged):
        organization, version = organizations[organization_id], versions[version_id]
        try:
            inputs_alert_update(organization=organization, model_version=version, today=today)
        except Exception:
            logger.exception("Could not judge the uploads of %s for %s", organization.name, version.name)


def inputs_judge_soon(*, organization_id: int | None = None) -> None:
    """Queue a judgement of uploads (of one organization, or of all) once the transaction commits; beat's next
    run is the fallback when the broker cannot take it."""
    transaction.on_commit(lambda: _queue_inputs_judgement(organization_id))


def _queue_inputs_judgement(organization_id: int | None) -> None:
    from ..tasks import judge_inputs

    try:
        judge_inputs.apply_async(kwargs={"organization_id": organization_id} if organization_id else {})
    except Exception:
        logger.exception("Could not queue the judgement of uploads; Celery beat sends the next one within the hour")


def inputs_result_judge(*, prediction: Prediction) -> None:
    """After an out-of-scope result of the active version, judge its organization's uploads at once rather than
    at beat's next run, so that the worklist warns and the hospital hears of unusual uploads within seconds of
    the result that tipped the share. Once an alert is open, further results only change its counts, which the
    scheduled judgement records: nothing is queued then, so a burst of photographs queues few judgements."""
    if not (prediction.out_of_scope and prediction.model_version.is_active):
        return
    organization_id = prediction.scan.patient.organization_id
    if InputsAlert.objects.filter(organization_id=organization_id, model_version=prediction.model_version,
                                  cleared_at__isnull=True).exists():
        return
    inputs_judge_soon(organization_id=organization_id)
