"""Result notifications (webhooks): a hospital system gets a signed POST when a diagnosis finishes, a
clinician reviews it or a scan is withdrawn (or restored), instead of polling every scan.

The body names ids, the status and the AI label, never the patient: the receiver reads the rest through
the API with its token. Each delivery is a row (what, where, how it went) sent by a Celery task that
retries with backoff; the receiver drops repeats by the delivery id.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import secrets
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from .. import selectors
from ..dicom_uids import result_instance_uids
from ..models import (
    WEBHOOK_EVENTS, ApiToken, InputsAlert, Organization, Patient, PatientErasure, PatientMerge, PerformanceAlert,
    Prediction, Review, Scan, WebhookDelivery,
)
from ..sealed import Unreadable
from . import outbound
from .staff import policy_change_record
from .outbound import MAX_ATTEMPTS  # noqa: F401 (tests and readers look for it here)
from .outbound import NotDelivered as WebhookNotDelivered

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Kidneyweb-Signature"


def signature(*, secret: str, body: bytes) -> str:
    """What the receiver recomputes to know the body came from here, unchanged: HMAC-SHA256, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@transaction.atomic
def webhook_set(*, organization: Organization, url: str, by: AbstractBaseUser) -> str | None:
    """Send notifications to ``url`` (blank: stop sending). A new address gets a new secret, returned
    once for the receiver's configuration; the change is recorded."""
    url = (url or "").strip()
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    if not url:
        if organization.webhook_url:
            organization.webhook_url = organization.webhook_secret = ""
            organization.save(update_fields=["webhook_url", "webhook_secret"])
            policy_change_record(organization=organization, by=by, detail="result notifications off")
        return None
    outbound.address_check(url, allow_http=settings.KIDNEYWEB_WEBHOOK_ALLOW_HTTP, what="an address",
                           example="https://ris.example.org/kidneyweb")
    organization.webhook_url = url
    organization.webhook_secret = secrets.token_hex(32)
    organization.save(update_fields=["webhook_url", "webhook_secret"])
    policy_change_record(organization=organization, by=by,
                         detail=f"result notifications to {urlsplit(url).netloc} (new secret)")
    return organization.webhook_secret


@transaction.atomic
def webhook_events_set(*, organization: Organization, events: list[str], by: AbstractBaseUser) -> list[str]:
    """Choose which events are sent (the address and its secret stay); the change is recorded."""
    unknown = sorted(set(events) - set(WEBHOOK_EVENTS))
    if unknown:
        raise ValidationError({"events": [f"Unknown event {', '.join(unknown)}; choose from {', '.join(WEBHOOK_EVENTS)}."]})
    chosen = [event for event in WEBHOOK_EVENTS if event in events]  # in a fixed order, once each
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    if chosen != organization.webhook_events:
        organization.webhook_events = chosen
        organization.save(update_fields=["webhook_events"])
        policy_change_record(organization=organization, by=by,
                             detail="result notifications of " + (", ".join(chosen) or "no events"))
    return chosen



def _enqueue(delivery_id: int) -> None:
    from ..tasks import deliver_webhook

    outbound.enqueue(deliver_webhook, WebhookDelivery, delivery_id)


def _event(*, organization_id: int, event: str, data: dict[str, Any]) -> WebhookDelivery | None:
    organization = Organization.objects.filter(pk=organization_id).only("webhook_url", "webhook_events").first()
    if organization is None or not organization.webhook_url:
        return None
    if event != "ping" and event not in organization.webhook_events:
        return None
    delivery = WebhookDelivery(organization_id=organization_id, event=event, url=organization.webhook_url, payload={})
    delivery.payload = {"event": event, "delivery": str(delivery.uuid), "at": timezone.now().isoformat(), **data}
    delivery.save()
    transaction.on_commit(partial(_enqueue, delivery.pk))
    return delivery


def _scan_data(scan: Scan) -> dict[str, Any]:
    data = {"id": scan.pk, "patient": scan.patient_id, "api_path": reverse("api:scan-detail", kwargs={"pk": scan.pk}),
            "fhir_path": reverse("api:scan-fhir", kwargs={"pk": scan.pk}),
            "hl7_path": reverse("api:scan-hl7", kwargs={"pk": scan.pk})}
    if scan.dicom_study_uid:
        # For the integration engine that stores the result in the archive, beside the study.
        data["dicom_path"] = reverse("api:scan-dicom", kwargs={"pk": scan.pk})
        if scan.dicom_series_uid and scan.dicom_instance_uid:  # a report must name its slice (dicom_report)
            data["dicom_sr_path"] = reverse("api:scan-dicom-sr", kwargs={"pk": scan.pk})
    return {"scan": data}


def diagnosis_finished_notify(*, prediction: Prediction) -> WebhookDelivery | None:
    """Queue the notification of a finished (done or failed) diagnosis, when its organization wants them."""
    scan = prediction.scan
    verdict = selectors.prediction_uncertainty(prediction) if prediction.status == Prediction.Status.DONE else None
    return _event(organization_id=scan.patient.organization_id, event="diagnosis.finished", data={
        **_scan_data(scan),
        "prediction": {
            "id": prediction.pk, "status": prediction.status, "label": prediction.label or None,
            "confidence": prediction.confidence, "needs_review": verdict.needs_review if verdict else True,
            "model_version": prediction.model_version.name, "failure_reason": prediction.failure_reason,
        },
    })


def review_saved_notify(*, review: Review) -> WebhookDelivery | None:
    """Queue the notification of a clinician's review: the reading a hospital system files as final. The
    comment stays out (free text may name the patient); the system reads it through the API."""
    prediction = review.prediction
    return _event(organization_id=review.scan.patient.organization_id, event="review.saved", data={
        **_scan_data(review.scan),
        "review": {
            "id": review.pk, "label": review.label, "agrees_with_ai": review.agrees_with_ai,
            "ai_label": prediction.label or None, "prediction": prediction.pk,
            "reviewed_by": review.reviewed_by.get_username(), "reviewed_at": review.reviewed_at.isoformat(),
        },
    })


def scan_restored_notify(*, scan: Scan, reason: str) -> WebhookDelivery | None:
    """A withdrawal undone: the scan and its results count again."""
    data = {**_scan_data(scan), "reason": reason}
    if scan.dicom_study_uid:
        # New instances: an archive may have rejected those named when it was withdrawn, and take them no more.
        data["dicom_result_uids"] = result_instance_uids(scan=scan)
    return _event(organization_id=scan.patient.organization_id, event="scan.restored", data=data)


def scan_withdrawn_notify(*, scan: Scan, refiled_as: Scan | None = None) -> WebhookDelivery | None:
    """A scan entered in error; ``refiled_as`` is the new scan its slice became for the right patient."""
    data = {**_scan_data(scan), "reason": scan.withdrawal_reason,
            "refiled_as": _scan_data(refiled_as)["scan"] if refiled_as is not None else None}
    if scan.dicom_study_uid:
        # The result captures an archive may hold of it (DICOM export), for the integration engine to reject there.
        data["dicom_result_uids"] = result_instance_uids(scan=scan)
    return _event(organization_id=scan.patient.organization_id, event="scan.withdrawn", data=data)


def _patient_data(patient: Patient) -> dict[str, Any]:
    # No MRN, like every notification: the receiving system reads the record through the API with its token.
    return {"id": patient.pk, "api_path": reverse("api:patient-detail", kwargs={"pk": patient.pk})}


def _merge_data(merge: PatientMerge) -> dict[str, Any]:
    return {"duplicate": _patient_data(merge.duplicate), "into": _patient_data(merge.into), "scans": merge.scans}


def patient_merged_notify(*, merge: PatientMerge) -> WebhookDelivery | None:
    """A duplicate record merged into the record of the same person: its scans (``scans``) are that
    record's now, and a hospital system files them under it."""
    return _event(organization_id=merge.into.organization_id, event="patient.merged", data={
        **_merge_data(merge), "reason": merge.reason, "merged_by": merge.merged_by.get_username(),
    })


def patient_unmerged_notify(*, merge: PatientMerge, moved_back: list[int]) -> WebhookDelivery | None:
    """A merge undone: the scans in ``moved_back`` are the duplicate record's again."""
    return _event(organization_id=merge.into.organization_id, event="patient.unmerged", data={
        **_merge_data(merge), "scans": moved_back, "reason": merge.undo_reason,
        "undone_by": merge.undone_by.get_username() if merge.undone_by_id else None,
    })


def patient_erased_notify(*, erasure: PatientErasure, scan_ids: list[int],
                          dicom_result_uids: list[str]) -> WebhookDelivery | None:
    """A record erased with the records merged into it and their scans (``scans``): a hospital system deletes its
    copies of their results, and its integration engine the result captures an archive may hold
    (``dicom_result_uids``). The API answers 410 for these records from now on."""
    return _event(organization_id=erasure.organization_id, event="patient.erased", data={
        "patient": {"id": erasure.patient_id}, "merged": erasure.merged_ids, "scans": scan_ids,
        "reason": erasure.reason, "erased_by": erasure.erased_by_name,
        "erased_at": erasure.erased_at.isoformat(), "dicom_result_uids": dicom_result_uids,
    })


def erasure_archive_given_up_notify(*, erasure: PatientErasure, dicom_result_uids: list[str]) -> WebhookDelivery | None:
    """Asking the archive to delete an erased record's results was given up (``pacs_erasure_give_up``): the archive
    may still hold these instances (``dicom_result_uids``), for the integration engine or the archive's team to
    delete by hand. Nothing names the patient."""
    return _event(organization_id=erasure.organization_id, event="erasure.archive_given_up", data={
        "erasure": {"id": erasure.pk, "patient": erasure.patient_id, "erased_at": erasure.erased_at.isoformat(),
                    "api_path": reverse("api:erasure-list")},
        "given_up_at": erasure.archive_given_up_at.isoformat(), "given_up_by": erasure.archive_given_up_by,
        "dicom_result_uids": dicom_result_uids,
    })


def _alert_data(alert: PerformanceAlert) -> dict[str, Any]:
    version = alert.model_version
    return {"model_version": {"id": version.pk, "name": version.name},
            "api_path": f"{reverse('api:performance')}?model_version={version.pk}",
            "below_since": alert.raised_at.isoformat()}


def model_below_card_notify(*, alert: PerformanceAlert, performance: selectors.PerformanceInUse) -> WebhookDelivery | None:
    """The active version fell below its card on the organization's reviewed slices, or on one more share: each
    share below with its counts, 95% interval and the card's value (counts only, no patient)."""
    return _event(organization_id=alert.organization_id, event="model.below_card", data={
        **_alert_data(alert),
        "below": [{"name": m.name, "count": m.count, "of": m.of, "patients": m.patients, "effective": m.effective,
                   "rate": m.rate, "interval": list(m.interval) if m.interval else None, "card": m.card}
                  for m in performance.below],
    })


def model_recovered_notify(*, alert: PerformanceAlert) -> WebhookDelivery | None:
    """The version's alert cleared: no share is below its card any more."""
    return _event(organization_id=alert.organization_id, event="model.recovered", data={
        **_alert_data(alert), "cleared_at": alert.cleared_at.isoformat() if alert.cleared_at else None,
    })


def _inputs_data(alert: InputsAlert, inputs: selectors.InputsInUse | None) -> dict[str, Any]:
    version = alert.model_version
    data: dict[str, Any] = {"model_version": {"id": version.pk, "name": version.name},
                            "api_path": f"{reverse('api:performance')}?model_version={version.pk}",
                            "unusual_since": alert.raised_at.isoformat()}
    if inputs is not None:
        data.update(weeks=inputs.weeks, diagnosed=inputs.diagnosed, out_of_scope=inputs.out_of_scope,
                    patients=inputs.patients, effective=inputs.effective, rate=inputs.rate,
                    interval=list(inputs.interval) if inputs.interval else None, expected=inputs.expected)
    return data


def model_inputs_unusual_notify(*, alert: InputsAlert, inputs: selectors.InputsInUse) -> WebhookDelivery | None:
    """More of the active version's recent results are out of scope than its card expects of slices like its
    training data: a new scanner, protocol or kind of image, seen before any review (counts only, no patient)."""
    return _event(organization_id=alert.organization_id, event="model.inputs_unusual", data=_inputs_data(alert, inputs))


def model_inputs_usual_notify(*, alert: InputsAlert, inputs: selectors.InputsInUse | None) -> WebhookDelivery | None:
    """The alert of unusual uploads ended, with why (``ended``): the share is back within what the card expects,
    too few recent results are left to judge, or the version is no longer active (then no counts)."""
    return _event(organization_id=alert.organization_id, event="model.inputs_usual", data={
        **_inputs_data(alert, inputs), "ended": alert.ended,
        "cleared_at": alert.cleared_at.isoformat() if alert.cleared_at else None,
    })


def api_tokens_expiring_notify(*, now: datetime.datetime | None = None) -> int:
    """Tell each organization's system, once per token, that a member's API token stops working within
    ApiToken.EXPIRY_NOTICE under the organization's token lifetime, so that a successor is issued in time (the
    token's first characters and expiry; no token). Beat runs it with the sweep. Returns how many were announced."""
    now = now or timezone.now()
    announced = 0
    for due in selectors.api_tokens_with_lifetime().filter(expiry_notified_at__isnull=True, user__is_active=True):
        expires = due.expires_at(due.lifetime_days)
        if not now < expires <= now + ApiToken.EXPIRY_NOTICE:
            continue
        with transaction.atomic():
            # Locked and checked again: two sweeps at once announce it once.
            token = (ApiToken.objects.select_for_update(of=("self",)).select_related("user")
                     .filter(pk=due.pk, expiry_notified_at__isnull=True).first())
            if token is None:
                continue
            token.expiry_notified_at = now
            token.save(update_fields=["expiry_notified_at"])
            _event(organization_id=due.organization_pk, event="api_token.expiring", data={
                "member": {"id": token.user_id, "username": token.user.get_username()},
                "token_prefix": token.prefix, "expires_at": expires.isoformat(),
                "api_path": reverse("api:member-detail", kwargs={"pk": token.user_id}),
            })
            announced += 1
    return announced


def webhook_ping(*, organization: Organization, by: AbstractBaseUser) -> WebhookDelivery:
    """Queue a test notification (event ``ping``, no scan), so an administrator sees that the receiving
    system is reached and checks the signature before real results depend on it."""
    delivery = _event(organization_id=organization.pk, event="ping", data={
        "message": f"A test notification from kidneyweb, sent by {by.get_username()}.",
    })
    if delivery is None:
        raise ValidationError("Set an address for result notifications first.")
    return delivery


@transaction.atomic
def webhook_send_again(*, delivery: WebhookDelivery, by: AbstractBaseUser) -> WebhookDelivery:
    """Send a notification that was given up on again, as it was (same delivery id, so a receiver that did
    get it after all drops the repeat), to the address set now, with a fresh round of attempts."""
    delivery = WebhookDelivery.objects.select_for_update(of=("self",)).select_related("organization").get(pk=delivery.pk)
    if delivery.status != WebhookDelivery.Status.FAILED:
        raise ValidationError(f"Only a failed notification can be sent again; this one is {delivery.get_status_display().lower()}.")
    if not delivery.organization.webhook_url:
        raise ValidationError("Set an address for result notifications first.")
    outbound.send_again_reset(delivery, by=by)
    transaction.on_commit(partial(_enqueue, delivery.pk))
    return delivery


def webhook_deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """POST one notification. Safe to call twice: a delivered or failed one is left alone. Raises
    WebhookNotDelivered when this attempt failed and another is allowed."""
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(of=("self",)).select_related("organization")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
            return delivery
        organization = delivery.organization
        if not organization.webhook_url:
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.last_error = "Not sent: result notifications were turned off before it left."
            delivery.save(update_fields=["status", "last_error"])
            return delivery
        # To the address and secret set now: a system moved to a new address has the new secret.
        delivery.url = organization.webhook_url
        delivery.attempts += 1
        delivery.save(update_fields=["url", "attempts"])
    if isinstance(organization.webhook_secret, Unreadable):
        return outbound.attempt_record(delivery, answer=outbound.Answer(None, b"", ""), delivered=False,
                                       error=f"Not sent: {organization.webhook_secret.reason}", final=True)
    # No lock or transaction while another server takes its time to answer.
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    answer = outbound.post(delivery.url, body=body, headers={
        "Content-Type": "application/json", "User-Agent": "kidneyweb-webhook/1",
        "X-Kidneyweb-Event": delivery.event, "X-Kidneyweb-Delivery": str(delivery.uuid),
        SIGNATURE_HEADER: signature(secret=organization.webhook_secret, body=body),
    })
    return outbound.attempt_record(delivery, answer=answer, delivered=answer.ok, error=answer.error)


def webhooks_resend_lost(*, now=None) -> list[int]:
    """Send again the deliveries whose task was lost; give up on those a day old. Returns the ids sent again.

    Celery beat runs this with the diagnoses' sweep. Sending twice is harmless: a delivered one is left
    alone, and the receiver drops a repeat by its delivery id."""
    resent = outbound.resend_lost(WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING),
                                  now=now or timezone.now(), enqueue=_enqueue)
    if resent:
        logger.warning("Sent result notifications %s again: their tasks were lost", resent)
    return resent
