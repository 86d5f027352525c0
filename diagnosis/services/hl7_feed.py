"""Each change of a scan's result to the organization's record system, as an HL7 v2 ORU^R01 message over MLLP: a
finished (or failed) diagnosis, a review, a withdrawal, a restoral. Every message states the scan's result as it is
when it leaves (diagnosis.hl7), so a delivery retried after a later one never takes the record back to an earlier
state, and one that would repeat what the record system already acknowledged is not sent again."""

from __future__ import annotations

import datetime
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from ..models import Hl7Delivery, Organization, Prediction, Scan
from ..sealed import Unreadable
from . import client_certificates, mllp, outbound
from .staff import policy_change_record


@transaction.atomic
def hl7_feed_set(*, organization: Organization, address: str, receiving_application: str = "",
                 receiving_facility: str = "", by: AbstractBaseUser) -> Organization:
    """Send the organization's results to ``address`` (mllp://host:port or mllps://; empty: stop sending), with
    MSH-5 and MSH-6 set to the receiving application and facility. The change is recorded."""
    address = (address or "").strip()
    if address and not mllp.parse(address).tls and not settings.KIDNEYWEB_HL7_ALLOW_PLAIN:
        raise ValidationError({"address": [
            "mllp:// sends each result, with the patient's name, unencrypted: it is allowed only where the deployment "
            "sets KIDNEYWEB_HL7_ALLOW_PLAIN=1 (a record system on a closed network). Enter mllps:// for MLLP over TLS."]})
    for name, value in (("receiving_application", receiving_application), ("receiving_facility", receiving_facility)):
        if any(c in value for c in "|^~\\&") or len(value) > 20:
            raise ValidationError({name: ["At most 20 characters, without | ^ ~ \\ or &, which HL7 reserves."]})
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    before = (organization.hl7_address, organization.hl7_receiving_application, organization.hl7_receiving_facility)
    organization.hl7_address = address
    organization.hl7_receiving_application = receiving_application.strip()
    organization.hl7_receiving_facility = receiving_facility.strip()
    organization.save(update_fields=["hl7_address", "hl7_receiving_application", "hl7_receiving_facility"])
    after = (organization.hl7_address, organization.hl7_receiving_application, organization.hl7_receiving_facility)
    if after != before:
        policy_change_record(organization=organization, by=by,
                             detail=f"AI results to the record system at {address} (HL7 v2)" if address
                             else "AI results to the record system (HL7 v2) off")
    return organization


def enqueue_delivery(delivery_id: int) -> None:
    from ..tasks import deliver_hl7

    outbound.enqueue(deliver_hl7, Hl7Delivery, delivery_id)


def hl7_result_send(*, scan: Scan, event: str) -> Hl7Delivery | None:
    """Queue the message of the scan's result after ``event`` changed it, when its organization sends results to a
    record system. Called in the transaction that made the change; sent once that commits."""
    organization = (Organization.objects.filter(pk=scan.patient.organization_id).only("hl7_address").first())
    if organization is None or not organization.hl7_address:
        return None
    delivery = Hl7Delivery.objects.create(organization=organization, scan=scan, event=event,
                                          url=organization.hl7_address)
    transaction.on_commit(partial(enqueue_delivery, delivery.pk))
    return delivery


def hl7_deliver(*, delivery_id: int) -> Hl7Delivery | None:
    """Send the scan's result as it is now. Safe to call twice: a delivered or failed one is left alone. Raises
    outbound.NotDelivered when this attempt failed and another is allowed."""
    from ..hl7 import scan_result_message

    with transaction.atomic():
        delivery = (Hl7Delivery.objects.select_for_update(of=("self",)).select_related("organization")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status != Hl7Delivery.Status.PENDING:
            return delivery
        organization = delivery.organization
        if not organization.hl7_address:
            delivery.status, delivery.last_error = Hl7Delivery.Status.FAILED, (
                "Not sent: sending results to the record system was turned off before it left.")
            delivery.save(update_fields=["status", "last_error"])
            return delivery
        delivery.url = organization.hl7_address
        delivery.attempts += 1
        delivery.save(update_fields=["url", "attempts"])
    address = mllp.parse(delivery.url)
    nothing = outbound.Answer(None, b"", "")
    # Over TLS, kidneyweb presents the organization's client certificate (the archive's, on the Members page) to a
    # record system that admits only the hospital's certificates.
    client = client_certificates.of(organization) if address.tls else None
    if isinstance(client, Unreadable):
        return outbound.attempt_record(delivery, answer=nothing, delivered=False, final=True,
                                       error=f"Not sent: {client.reason}")
    # One message of a scan at a time, built and sent under the scan's lock: two changes close together reach the
    # record system in the order they were made, each stating the scan as it then was. The attempt is recorded
    # after the lock is let go, so that a failure raised for a retry does not undo it.
    ack, failure, refused, repeated = None, "", "", False
    with transaction.atomic():
        scan = Scan.objects.select_for_update().select_related("patient__organization").filter(
            pk=delivery.scan_id).first()
        if scan is None:
            return None  # the patient's record was erased meanwhile, and the delivery with it
        message = scan_result_message(
            scan=scan, base_url=settings.KIDNEYWEB_PUBLIC_URL, receiving_application=organization.hl7_receiving_application,
            receiving_facility=organization.hl7_receiving_facility)
        control_id = message.split(b"|", 10)[9].decode()
        Hl7Delivery.objects.filter(pk=delivery.pk).update(control_id=control_id, message=message.decode())
        # The record system acknowledged this very message already (a later change was sent first).
        repeated = (Hl7Delivery.objects.filter(scan=scan, status=Hl7Delivery.Status.DELIVERED, control_id=control_id,
                                               url=delivery.url).exclude(pk=delivery.pk).exists())
        if not repeated:
            try:
                ack = mllp.send(address, message, context=client_certificates.tls_context(client)
                                if address.tls else None)
            except mllp.NotAcknowledged as exc:
                failure, refused = str(exc), exc.refused
            if ack is not None and ack.control_id != control_id:
                # An engine that answers out of step (another connection's message): this one is not acknowledged.
                ack, failure = None, (f"The record system acknowledged another message ({ack.control_id or 'none'}) "
                                      f"instead of this one ({control_id}).")
    if repeated:
        return outbound.attempt_record(delivery, answer=nothing, delivered=True, error="")
    if ack is None and address.tls and not refused:
        # In TLS 1.3 a refused client certificate shows as the connection closing on the message: ask again, and read.
        refused = client_certificates.tls_refusal(address.host, address.port, client)
    if refused:
        return outbound.attempt_record(delivery, answer=nothing, delivered=False, final=True, error=(
            client_certificates.client_refused("The record system", client, refused)))
    if ack is None:
        return outbound.attempt_record(delivery, answer=nothing, delivered=False, error=failure)
    Hl7Delivery.objects.filter(pk=delivery.pk).update(ack_code=ack.code)
    if ack.accepted:
        return outbound.attempt_record(delivery, answer=nothing, delivered=True, error="")
    said = f": {ack.text}" if ack.text else ""
    return outbound.attempt_record(
        delivery, answer=nothing, delivered=False, final=ack.rejected,
        error=f"The record system {'rejected' if ack.rejected else 'could not file'} the message ({ack.code}){said}.")


MAX_BACKFILL = 5000  # scans per request: a longer history is sent a period at a time
EARLIER = "earlier.result"  # the event of a result sent because it finished before the address was set


@transaction.atomic
def hl7_send_since(*, organization: Organization, since: datetime.date, by: AbstractBaseUser) -> int:
    """Send the results of scans whose diagnosis finished on or after ``since`` and of which the record system was
    never sent anything (they finished before its address was set), as each stands now; withdrawn scans are left
    out. Returns how many are queued; refused for a day to come or more than MAX_BACKFILL scans at once."""
    if not organization.hl7_address:
        raise ValidationError("Set the record system's HL7 address first.")
    if since > timezone.localdate():
        raise ValidationError({"since": ["Choose a day that has passed."]})
    start = timezone.make_aware(datetime.datetime.combine(since, datetime.time.min))
    scans = list(Scan.objects.filter(patient__organization=organization, withdrawn_at=None, hl7_deliveries=None,
                                     predictions__status=Prediction.Status.DONE, predictions__finished_at__gte=start)
                 .distinct().order_by("uploaded_at", "id").values_list("pk", flat=True)[:MAX_BACKFILL + 1])
    if len(scans) > MAX_BACKFILL:
        raise ValidationError({"since": [f"More than {MAX_BACKFILL} results finished since {since:%Y-%m-%d}: choose "
                                         "a later day, and send the earlier ones after."]})
    deliveries = Hl7Delivery.objects.bulk_create([
        Hl7Delivery(organization=organization, scan_id=pk, event=EARLIER, url=organization.hl7_address)
        for pk in scans])
    for delivery in deliveries:
        transaction.on_commit(partial(enqueue_delivery, delivery.pk))
    if deliveries:
        policy_change_record(organization=organization, by=by, detail=(
            f"{len(deliveries)} earlier result{'s' if len(deliveries) != 1 else ''} to the record system "
            f"(since {since:%Y-%m-%d})"))
    return len(deliveries)


@transaction.atomic
def hl7_send_again(*, delivery: Hl7Delivery, by: AbstractBaseUser) -> Hl7Delivery:
    """Send a message the record system did not take again, with a fresh round of attempts; it states the scan's
    result as it is then."""
    delivery = Hl7Delivery.objects.select_for_update(of=("self",)).select_related("organization").get(pk=delivery.pk)
    if delivery.status != Hl7Delivery.Status.FAILED:
        raise ValidationError(f"Only a message the record system did not take can be sent again; this one is "
                              f"{delivery.get_status_display().lower()}.")
    if not delivery.organization.hl7_address:
        raise ValidationError("Set the record system's HL7 address first.")
    outbound.send_again_reset(delivery, by=by)
    transaction.on_commit(partial(enqueue_delivery, delivery.pk))
    return delivery


def hl7_send_failed_again(*, organization: Organization, by: AbstractBaseUser) -> int:
    """After an outage of the record system: for each scan whose newest message was not taken, send it again (it
    states the scan as it is now, so one per scan says all that the failed ones said). Returns how many are sent."""
    if not organization.hl7_address:
        raise ValidationError("Set the record system's HL7 address first.")
    newest = Hl7Delivery.objects.filter(scan=OuterRef("scan")).order_by("-created_at", "-id").values("pk")[:1]
    failed = list(Hl7Delivery.objects.filter(organization=organization, status=Hl7Delivery.Status.FAILED,
                                             pk=Subquery(newest)))
    for delivery in failed:
        hl7_send_again(delivery=delivery, by=by)
    return len(failed)


def hl7_resend_lost(*, now=None) -> list[int]:
    """Send again the messages whose task the broker lost (see outbound.resend_lost)."""
    return outbound.resend_lost(Hl7Delivery.objects.filter(status=Hl7Delivery.Status.PENDING),
                                now=now or timezone.now(), enqueue=enqueue_delivery)
