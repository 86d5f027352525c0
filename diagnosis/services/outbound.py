"""What result notifications (webhooks) and results sent to the archive (PACS) share: one POST to another
organization's server per attempt, counted on a delivery row, retried by its task with backoff, given up on after
a few attempts or a day, sent again by an administrator or by the sweep for tasks the broker lost."""

from __future__ import annotations

import logging
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import OutboundDelivery
from .sweeps import resend_stale

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6  # over about 5 minutes of backoff (tasks.deliver_webhook, tasks.deliver_to_pacs)
# Pending this long since queued or last sent again, a delivery has lost its task (the broker restarted).
LOST_AFTER = timedelta(minutes=15)
GIVE_UP_AFTER = timedelta(days=1)
TIMEOUT_SECONDS = 10
MAX_ANSWER_BYTES = 1 << 20  # what is read of an answer: a failure reason, never a bulk download

Delivery = TypeVar("Delivery", bound=OutboundDelivery)


class NotDelivered(Exception):
    """This attempt failed and more are allowed: the task tries again later."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST becomes a GET without the body, whose 200 would read as delivered: a 3xx is an answer.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class Answer:
    """How the other server answered one request: its HTTP status (None when it was not reached), the start of its
    body, and what went wrong in words ("" when it answered 2xx)."""

    status: int | None
    body: bytes
    error: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def enqueue(task: Any, model: type[OutboundDelivery], delivery_id: int) -> None:
    """Send ``task`` for the delivery; a broker that does not answer leaves it failed with that reason (an
    administrator sends it again), not pending for a task that was never sent."""
    try:
        task.apply_async(args=[delivery_id])
    except Exception as exc:
        logger.exception("Could not queue %s %s", model.__name__, delivery_id)
        model.objects.filter(pk=delivery_id, status=OutboundDelivery.Status.PENDING).update(
            status=OutboundDelivery.Status.FAILED,
            last_error=f"Not sent: the task broker did not answer ({exc.__class__.__name__}).")


def address_check(url: str, *, allow_http: bool, what: str, example: str) -> None:
    """Refuse (ValidationError on ``url``) an address that is not https, or http where ``allow_http``: a plain-http
    address would expose what is sent on the way. ``what`` and ``example`` complete the message."""
    schemes = ["https", "http"] if allow_http else ["https"]
    try:
        URLValidator(schemes=schemes)(url)
    except ValidationError:
        allowed = " or ".join(f"{s}://" for s in schemes)
        raise ValidationError({"url": [f"Enter {what} starting with {allowed}, such as {example}."]}) from None


def post(url: str, *, body: bytes, headers: dict[str, str], receiver: str = "receiver",
         context: ssl.SSLContext | None = None) -> Answer:
    """POST ``body`` to ``url`` (whose scheme was checked when it was set), without following redirects; over https
    with ``context`` when given (a client certificate loaded), else the default one."""
    return _send(urllib.request.Request(url, data=body, method="POST", headers=headers), receiver, context)


def get(url: str, *, headers: dict[str, str], receiver: str = "receiver", context: ssl.SSLContext | None = None) -> Answer:
    """GET ``url`` (whose scheme was checked when it was set), without following redirects."""
    return _send(urllib.request.Request(url, method="GET", headers=headers), receiver, context)


def _send(request: urllib.request.Request, receiver: str, context: ssl.SSLContext | None = None) -> Answer:
    opener = _OPENER if context is None else urllib.request.build_opener(
        _NoRedirects, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return Answer(response.status, response.read(MAX_ANSWER_BYTES), "")
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read(MAX_ANSWER_BYTES) or b"", f"The {receiver} answered {exc.code} {exc.reason}.")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return Answer(None, b"", f"Not reached: {getattr(exc, 'reason', exc)}.")


def attempt_record(delivery: Delivery, *, answer: Answer, delivered: bool, error: str, final: bool = False) -> Delivery:
    """Record how an attempt went, unless the row stopped being pending meanwhile. A failed attempt is final when
    ``final`` (retrying cannot change the answer) or when it was the last allowed. Raises NotDelivered when
    another attempt is due."""
    fields: dict[str, Any] = {"response_status": answer.status, "last_error": error[:300]}
    if delivered:
        fields.update(status=OutboundDelivery.Status.DELIVERED, delivered_at=timezone.now())
    elif final:
        fields.update(status=OutboundDelivery.Status.FAILED)
    elif delivery.attempts >= MAX_ATTEMPTS:
        fields.update(status=OutboundDelivery.Status.FAILED,
                      last_error=f"Gave up after {delivery.attempts} attempts. {error}"[:300])
    type(delivery).objects.filter(pk=delivery.pk, status=OutboundDelivery.Status.PENDING).update(**fields)
    try:
        delivery.refresh_from_db()
    except type(delivery).DoesNotExist:
        # Deleted while it was on its way: the patient's record was erased meanwhile (services.erasures).
        logger.info("%s %s was deleted while it was sent; nothing to record.", type(delivery).__name__, delivery.pk)
        return delivery
    if delivery.status == OutboundDelivery.Status.PENDING:
        logger.warning("%s %s (attempt %d): %s", type(delivery).__name__, delivery.pk, delivery.attempts, error)
        raise NotDelivered(error)
    return delivery


def send_again_reset(delivery: OutboundDelivery, *, by: AbstractBaseUser) -> None:
    """Make a failed delivery (locked by the caller) pending again with a fresh round of attempts."""
    delivery.status = OutboundDelivery.Status.PENDING
    delivery.attempts = 0
    delivery.response_status = None
    delivery.last_error = ""
    delivery.resent_at = None
    delivery.sent_again_at = timezone.now()
    delivery.sent_again_by = by
    delivery.save(update_fields=["status", "attempts", "response_status", "last_error", "resent_at",
                                 "sent_again_at", "sent_again_by"])


def resend_lost(pending: QuerySet, *, now: datetime, enqueue: Callable[[int], None]) -> list[int]:
    """Send again the ``pending`` deliveries whose task was lost; give up on those a day old. Returns the ids sent
    again. Sending twice is harmless: a delivered one is left alone."""
    pending.annotate(started=Coalesce("sent_again_at", "created_at")).filter(started__lt=now - GIVE_UP_AFTER).update(
        status=OutboundDelivery.Status.FAILED, last_error="Given up: not sent within a day (the task was lost).")
    lost = pending.annotate(last_touched=Coalesce("resent_at", "sent_again_at", "created_at")).filter(
        last_touched__lt=now - LOST_AFTER)
    return resend_stale(lost, now=now, enqueue=enqueue)
