"""Result notifications: a signed POST to the organization's system when a diagnosis finishes or a scan is
withdrawn, delivered to a real HTTP server here, retried while it fails, and given up with the reason."""

import hashlib
import hmac
import socket

import pytest
from django.core.exceptions import ValidationError

from diagnosis import services
from diagnosis.models import Prediction, StaffChange, WebhookDelivery

from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ScanFactory

# Sent until an administrator chooses otherwise.
EVERY_EVENT = ["diagnosis.finished", "review.saved", "scan.withdrawn", "scan.restored", "patient.merged",
               "patient.unmerged", "patient.erased", "erasure.archive_given_up", "model.below_card", "model.recovered",
               "model.inputs_unusual", "model.inputs_usual", "api_token.expiring"]


@pytest.fixture
def allow_http(settings):
    settings.KIDNEYWEB_WEBHOOK_ALLOW_HTTP = True  # the receiver here is plain http on localhost


@pytest.fixture
def hooked(organization, boss, receiver, allow_http):
    secret = services.webhook_set(organization=organization, url=receiver.url, by=boss)
    return secret


def _finished(organization, django_capture_on_commit_callbacks, **kwargs):
    scan = ScanFactory(patient=PatientFactory(organization=organization, name="Ada Lovelace",
                                              mrn=f"MRN-SECRET-{Prediction.objects.count()}"))
    prediction = PredictionFactory(scan=scan, status=Prediction.Status.QUEUED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.prediction_fail(prediction_id=prediction.pk, reason="The model could not read the slice.")
    return prediction, callbacks


def test_an_address_must_be_https_and_a_new_one_gets_a_new_secret_that_is_recorded(organization, boss, settings):
    with pytest.raises(ValidationError, match="starting with https://"):
        services.webhook_set(organization=organization, url="http://ris.example.org/hook", by=boss)

    first = services.webhook_set(organization=organization, url="https://ris.example.org/hook", by=boss)
    second = services.webhook_set(organization=organization, url="https://ris.example.org/hook", by=boss)

    assert len(first) == 64 and first != second
    organization.refresh_from_db()
    assert organization.webhook_url == "https://ris.example.org/hook" and organization.webhook_secret == second
    assert services.webhook_set(organization=organization, url="", by=boss) is None
    organization.refresh_from_db()
    assert organization.webhook_url == "" and organization.webhook_secret == ""
    assert [c.detail for c in StaffChange.objects.order_by("id")] == [
        "result notifications to ris.example.org (new secret)", "result notifications to ris.example.org (new secret)",
        "result notifications off"]


def test_without_an_address_nothing_is_queued(organization, django_capture_on_commit_callbacks):
    _, callbacks = _finished(organization, django_capture_on_commit_callbacks)

    assert not WebhookDelivery.objects.exists() and callbacks == []


def test_a_finished_diagnosis_arrives_signed_and_without_patient_details(
        organization, hooked, receiver, django_capture_on_commit_callbacks):
    prediction, callbacks = _finished(organization, django_capture_on_commit_callbacks)
    assert len(callbacks) == 1  # the task leaves only once the diagnosis is committed
    delivery = WebhookDelivery.objects.get()

    assert services.webhook_deliver(delivery_id=delivery.pk).status == WebhookDelivery.Status.DELIVERED

    [request] = receiver.received
    assert request.path == "/kidneyweb/results"
    expected = "sha256=" + hmac.new(hooked.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-kidneyweb-signature"] == expected
    assert request.headers["x-kidneyweb-event"] == "diagnosis.finished"
    assert request.headers["x-kidneyweb-delivery"] == str(delivery.uuid) == request.json["delivery"]
    body = request.json
    assert body["scan"] == {"id": prediction.scan_id, "patient": prediction.scan.patient_id,
                            "api_path": f"/api/v1/scans/{prediction.scan_id}/",
                            "fhir_path": f"/api/v1/scans/{prediction.scan_id}/fhir/",
                            "hl7_path": f"/api/v1/scans/{prediction.scan_id}/hl7/"}
    assert body["prediction"]["status"] == "failed" and body["prediction"]["needs_review"] is True
    assert b"Ada" not in request.body and b"MRN-SECRET" not in request.body
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.response_status, delivery.delivered_at is not None) == (1, 200, True)

    services.webhook_deliver(delivery_id=delivery.pk)  # a repeated task sends nothing again
    assert len(receiver.received) == 1


def test_a_done_diagnosis_says_its_label_and_whether_it_needs_review(organization, hooked, receiver):
    prediction = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)),
                                       label="Tumor", top=0.55)

    delivery = services.diagnosis_finished_notify(prediction=prediction)
    services.webhook_deliver(delivery_id=delivery.pk)

    assert receiver.received[0].json["prediction"] | {"id": 0} == {
        "id": 0, "status": "done", "label": "Tumor", "confidence": 0.55, "needs_review": True,
        "model_version": prediction.model_version.name, "failure_reason": ""}



def test_a_dicom_slices_diagnosis_names_where_to_fetch_its_result_for_the_archive(organization, hooked, receiver):
    scan = ScanFactory(patient=PatientFactory(organization=organization), dicom_study_uid="1.2.826.0.1.3680043.8.498.81",
                       dicom_series_uid="1.2.826.0.1.3680043.8.498.82", dicom_instance_uid="1.2.826.0.1.3680043.8.498.83")
    headless = ScanFactory(patient=scan.patient, dicom_study_uid="1.2.826.0.1.3680043.8.498.81")

    for each in (scan, headless):
        services.webhook_deliver(delivery_id=services.diagnosis_finished_notify(
            prediction=DonePredictionFactory(scan=each)).pk)

    sent, without_instance = (request.json["scan"] for request in receiver.received)
    assert (sent["dicom_path"], sent["dicom_sr_path"]) == (f"/api/v1/scans/{scan.pk}/dicom/",
                                                           f"/api/v1/scans/{scan.pk}/dicom-sr/")
    # A structured report must name its slice: without the instance UID there is the capture only.
    assert "dicom_path" in without_instance and "dicom_sr_path" not in without_instance

def test_a_receiver_that_fails_is_tried_again_and_then_given_up_with_the_reason(
        organization, hooked, receiver, django_capture_on_commit_callbacks):
    _finished(organization, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    receiver.answers = [503] * services.webhooks.MAX_ATTEMPTS

    for attempt in range(1, services.webhooks.MAX_ATTEMPTS):
        with pytest.raises(services.WebhookNotDelivered, match="The receiver answered 503"):
            services.webhook_deliver(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.PENDING, attempt)

    final = services.webhook_deliver(delivery_id=delivery.pk)
    assert final.status == WebhookDelivery.Status.FAILED
    assert final.last_error == "Gave up after 6 attempts. The receiver answered 503 Service Unavailable."
    assert len(receiver.received) == services.webhooks.MAX_ATTEMPTS


def test_a_redirect_is_not_taken_for_delivery(organization, hooked, receiver, django_capture_on_commit_callbacks):
    # Followed, the POST would become a GET without the body, and its 200 would read as delivered.
    _finished(organization, django_capture_on_commit_callbacks)
    receiver.answers = [302]

    with pytest.raises(services.WebhookNotDelivered, match="The receiver answered 302"):
        services.webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)
    assert len(receiver.received) == 1


def test_an_unreachable_receiver_is_said(organization, boss, allow_http, django_capture_on_commit_callbacks):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    services.webhook_set(organization=organization, url=f"http://127.0.0.1:{port}/hook", by=boss)
    _finished(organization, django_capture_on_commit_callbacks)

    with pytest.raises(services.WebhookNotDelivered, match="Not reached"):
        services.webhook_deliver(delivery_id=WebhookDelivery.objects.get().pk)


def test_a_withdrawn_scan_is_notified(organization, clinician, hooked, receiver):
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)

    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")
    services.webhook_deliver(delivery_id=WebhookDelivery.objects.get(event="scan.withdrawn").pk)

    body = receiver.received[0].json
    assert (body["event"], body["scan"]["id"], body["reason"]) == ("scan.withdrawn", scan.pk, "wrong patient")


def test_a_delivery_whose_task_was_lost_is_sent_again_once_and_given_up_after_a_day(
        organization, hooked, django_capture_on_commit_callbacks):
    import datetime

    from django.utils import timezone

    now = timezone.now()
    fresh, lost, ancient = (WebhookDelivery.objects.create(organization=organization, event="diagnosis.finished",
                                                           url="https://ris.example.org/hook", payload={})
                            for _ in range(3))
    WebhookDelivery.objects.filter(pk=lost.pk).update(created_at=now - datetime.timedelta(minutes=16))
    WebhookDelivery.objects.filter(pk=ancient.pk).update(created_at=now - datetime.timedelta(days=2))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.webhooks_resend_lost(now=now) == [lost.pk]
        assert services.webhooks_resend_lost(now=now + datetime.timedelta(minutes=5)) == []  # not again at once
    assert len(callbacks) == 1
    ancient.refresh_from_db()
    assert ancient.status == WebhookDelivery.Status.FAILED and "not sent within a day" in ancient.last_error
    # 16 minutes on, the first resend is itself overdue, and the fresh one has become lost too.
    assert sorted(services.webhooks_resend_lost(now=now + datetime.timedelta(minutes=16))) == sorted([fresh.pk, lost.pk])


def test_a_pending_notification_follows_the_address_set_since_or_is_dropped_when_they_are_turned_off(
        organization, boss, hooked, receiver, allow_http, django_capture_on_commit_callbacks):
    from . import receiver as http_receiver

    _finished(organization, django_capture_on_commit_callbacks)
    _finished(organization, django_capture_on_commit_callbacks)
    first, second = WebhookDelivery.objects.order_by("id")
    moved, server = http_receiver.start()
    try:
        new_secret = services.webhook_set(organization=organization, url=moved.url, by=boss)
        services.webhook_deliver(delivery_id=first.pk)
        [request] = moved.received
        assert request.headers["x-kidneyweb-signature"] == "sha256=" + hmac.new(
            new_secret.encode(), request.body, hashlib.sha256).hexdigest()
        assert receiver.received == []
    finally:
        server.shutdown()
        server.server_close()

    services.webhook_set(organization=organization, url="", by=boss)
    assert services.webhook_deliver(delivery_id=second.pk).status == WebhookDelivery.Status.FAILED
    second.refresh_from_db()
    assert second.last_error == "Not sent: result notifications were turned off before it left."


def _given_up(organization, receiver, django_capture_on_commit_callbacks) -> WebhookDelivery:
    _finished(organization, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    receiver.answers = [503] * services.webhooks.MAX_ATTEMPTS
    for _ in range(services.webhooks.MAX_ATTEMPTS - 1):
        with pytest.raises(services.WebhookNotDelivered):
            services.webhook_deliver(delivery_id=delivery.pk)
    assert services.webhook_deliver(delivery_id=delivery.pk).status == WebhookDelivery.Status.FAILED
    return delivery


def test_a_given_up_notification_sent_again_arrives_as_it_was_after_a_fresh_round_of_tries(
        organization, boss, hooked, receiver, django_capture_on_commit_callbacks):
    delivery = _given_up(organization, receiver, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = services.webhook_send_again(delivery=delivery, by=boss)
    assert len(callbacks) == 1  # queued once the change is committed
    assert (again.status, again.attempts, again.last_error, again.sent_again_by) == (
        WebhookDelivery.Status.PENDING, 0, "", boss)

    receiver.answers = [503]  # the first new try fails too: the retries start again rather than giving up
    with pytest.raises(services.WebhookNotDelivered):
        services.webhook_deliver(delivery_id=delivery.pk)
    assert services.webhook_deliver(delivery_id=delivery.pk).status == WebhookDelivery.Status.DELIVERED

    first, last = receiver.received[0], receiver.received[-1]
    assert last.headers["x-kidneyweb-delivery"] == first.headers["x-kidneyweb-delivery"] == str(delivery.uuid)
    assert last.body == first.body  # as it was: the receiver can drop it if it did get it after all


def test_only_a_failed_notification_can_be_sent_again_and_only_while_an_address_is_set(
        organization, boss, hooked, receiver, django_capture_on_commit_callbacks):
    _finished(organization, django_capture_on_commit_callbacks)
    pending = WebhookDelivery.objects.get()
    with pytest.raises(ValidationError, match="Only a failed notification can be sent again; this one is pending"):
        services.webhook_send_again(delivery=pending, by=boss)
    services.webhook_deliver(delivery_id=pending.pk)
    with pytest.raises(ValidationError, match="this one is delivered"):
        services.webhook_send_again(delivery=pending, by=boss)

    WebhookDelivery.objects.filter(pk=pending.pk).update(status=WebhookDelivery.Status.FAILED, last_error="x")
    services.webhook_set(organization=organization, url="", by=boss)
    with pytest.raises(ValidationError, match="Set an address"):
        services.webhook_send_again(delivery=pending, by=boss)
    pending.refresh_from_db()
    assert (pending.status, pending.last_error) == (WebhookDelivery.Status.FAILED, "x")


def test_a_notification_sent_again_gets_a_day_from_then_before_the_sweep_gives_up(
        organization, boss, hooked, django_capture_on_commit_callbacks):
    import datetime

    from django.utils import timezone

    old = WebhookDelivery.objects.create(organization=organization, event="diagnosis.finished",
                                         url="https://ris.example.org/hook", payload={}, status="failed")
    WebhookDelivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=False):
        services.webhook_send_again(delivery=old, by=boss)

    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.webhooks_resend_lost(now=now) == []
        assert services.webhooks_resend_lost(now=now + datetime.timedelta(minutes=16)) == [old.pk]
    assert len(callbacks) == 1
    old.refresh_from_db()
    assert old.status == WebhookDelivery.Status.PENDING


def test_a_test_notification_arrives_signed_and_names_who_sent_it(organization, boss, hooked, receiver):
    delivery = services.webhook_ping(organization=organization, by=boss)
    services.webhook_deliver(delivery_id=delivery.pk)

    [request] = receiver.received
    assert request.headers["x-kidneyweb-event"] == "ping"
    assert request.headers["x-kidneyweb-signature"] == "sha256=" + hmac.new(
        hooked.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.json["message"] == "A test notification from kidneyweb, sent by boss."


def test_a_test_notification_without_an_address_is_refused(organization, boss):
    with pytest.raises(ValidationError, match="Set an address"):
        services.webhook_ping(organization=organization, by=boss)
    assert not WebhookDelivery.objects.exists()


def test_events_left_out_are_not_sent_and_a_test_always_is(organization, boss, clinician, hooked, receiver,
                                                           django_capture_on_commit_callbacks):
    assert services.webhook_events_set(organization=organization, events=["scan.withdrawn"], by=boss) == [
        "scan.withdrawn"]
    _finished(organization, django_capture_on_commit_callbacks)
    assert not WebhookDelivery.objects.exists()  # finished diagnoses were left out

    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)
    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")
    services.webhook_events_set(organization=organization, events=[], by=boss)
    services.webhook_ping(organization=organization, by=boss)

    assert sorted(WebhookDelivery.objects.values_list("event", flat=True)) == ["ping", "scan.withdrawn"]
    organization.refresh_from_db()
    assert organization.webhook_secret == hooked  # choosing events keeps the secret
    assert list(StaffChange.objects.order_by("id").values_list("detail", flat=True))[-2:] == [
        "result notifications of scan.withdrawn", "result notifications of no events"]


def test_an_unknown_event_is_refused_by_name(organization, boss, hooked):
    with pytest.raises(ValidationError, match="Unknown event scan.deleted"):
        services.webhook_events_set(organization=organization, events=["scan.deleted", "diagnosis.finished"], by=boss)
    organization.refresh_from_db()
    assert organization.webhook_events == EVERY_EVENT


def test_a_review_is_notified_with_the_reading_and_without_the_comment(organization, clinician, hooked, receiver):
    scan = ScanFactory(patient=PatientFactory(organization=organization, name="Ada Lovelace"))
    prediction = DonePredictionFactory(scan=scan, label="Stone")

    review = services.review_create(scan=scan, user=clinician, label="Tumor", comment="Ada's left kidney, see CT 3")
    services.webhook_deliver(delivery_id=WebhookDelivery.objects.get(event="review.saved").pk)

    [request] = receiver.received
    body = request.json
    assert body["review"] == {"id": review.pk, "label": "Tumor", "agrees_with_ai": False, "ai_label": "Stone",
                              "prediction": prediction.pk, "reviewed_by": "alice",
                              "reviewed_at": review.reviewed_at.isoformat()}
    assert body["scan"]["id"] == scan.pk
    assert b"Ada" not in request.body  # neither the patient's name nor the free-text comment


def test_a_restored_scan_is_notified_with_the_reason(organization, clinician, hooked, receiver):
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)
    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")

    services.scan_restore(scan=scan, user=clinician, reason="withdrawn by mistake")
    services.webhook_deliver(delivery_id=WebhookDelivery.objects.get(event="scan.restored").pk)

    body = receiver.received[0].json
    assert (body["event"], body["scan"]["id"], body["reason"]) == ("scan.restored", scan.pk, "withdrawn by mistake")


def test_a_token_about_to_expire_is_announced_once_with_its_prefix_and_expiry_and_no_token(
        organization, hooked, boss, nurse, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from diagnosis.models import ApiToken

    soon = services.member_api_token_issue(organization=organization, member=nurse, by=boss)
    fresh = services.member_api_token_issue(organization=organization, member=boss, by=boss)
    now = timezone.now()
    ApiToken.objects.filter(user=nurse).update(created=now - timedelta(days=80))
    assert services.api_tokens_expiring_notify(now=now) == 0  # no lifetime: tokens do not expire

    services.organization_api_token_days_set(organization=organization, days=90, by=boss)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.api_tokens_expiring_notify(now=now) == 1
    assert services.api_tokens_expiring_notify(now=now + timedelta(hours=1)) == 0  # once

    delivery = WebhookDelivery.objects.get(event="api_token.expiring")
    expires = ApiToken.objects.get(user=nurse).created + timedelta(days=90)
    assert delivery.payload["member"] == {"id": nurse.pk, "username": "nurse"}
    assert (delivery.payload["token_prefix"], delivery.payload["expires_at"]) == (soon[:8], expires.isoformat())
    assert delivery.payload["api_path"] == f"/api/v1/members/{nurse.pk}/"
    assert soon not in str(delivery.payload) and fresh[:8] not in str(delivery.payload) and len(callbacks) == 1

    # Its successor is announced in its own time, not now.
    services.member_api_token_issue(organization=organization, member=nurse, by=boss)
    assert services.api_tokens_expiring_notify(now=now) == 0
