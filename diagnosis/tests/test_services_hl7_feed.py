"""Results to the record system as HL7 v2 ORU^R01 over MLLP: each change of a scan's result goes to a real MLLP
listener on localhost once the change commits, stating the scan as it is when the message leaves; an engine that
is down is tried again, one that rejects the message fails it with its reason, and an administrator sends it again."""

import datetime
import ssl
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from diagnosis import services
from diagnosis.models import Hl7Delivery, Scan, StaffChange
from diagnosis.services import mllp, outbound

from . import certificates
from . import mllp_receiver
from .factories import PatientFactory, image_bytes


@pytest.fixture
def allow_plain(settings):
    settings.KIDNEYWEB_HL7_ALLOW_PLAIN = True  # the listener here is plain MLLP on localhost


@pytest.fixture
def engine(organization, boss, allow_plain):
    listener, server = mllp_receiver.start()
    services.hl7_feed_set(organization=organization, address=listener.address, receiving_application="EPIC",
                          receiving_facility="GENERAL", by=boss)
    yield listener
    server.shutdown()
    server.server_close()


@pytest.fixture
def patient(organization):
    return PatientFactory(organization=organization, name="Grace Hopper", mrn="00123456",
                          birth_date=datetime.date(1906, 12, 9), sex="F")


def _diagnosed(patient, clinician, django_capture_on_commit_callbacks):
    """A PNG slice diagnosed for real by the worker's service; its message is queued as the result commits."""
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes("PNG", (40, 40))),
                                uploaded_by=clinician)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.prediction_run(prediction_id=scan.latest_prediction.pk)
    [delivery] = Hl7Delivery.objects.filter(scan=scan)
    return scan, delivery, callbacks


def _parsed(text: str):
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT)
    message.validate()
    return message


def test_the_address_must_be_mllp_over_tls_unless_allowed_and_each_change_is_recorded(organization, boss, settings):
    with pytest.raises(ValidationError, match="mllp://host:port"):
        services.hl7_feed_set(organization=organization, address="https://engine.example.org", by=boss)
    with pytest.raises(ValidationError, match="KIDNEYWEB_HL7_ALLOW_PLAIN"):
        services.hl7_feed_set(organization=organization, address="mllp://engine.example.org:6661", by=boss)
    with pytest.raises(ValidationError, match="which HL7 reserves"):
        services.hl7_feed_set(organization=organization, address="mllps://engine.example.org:6661",
                              receiving_application="EPIC^ADT", by=boss)
    organization.refresh_from_db()
    assert organization.hl7_address == ""  # nothing half-set by a refused change

    services.hl7_feed_set(organization=organization, address="mllps://engine.example.org:6661", by=boss)
    settings.KIDNEYWEB_HL7_ALLOW_PLAIN = True
    services.hl7_feed_set(organization=organization, address="mllp://[::1]:2575", by=boss)
    services.hl7_feed_set(organization=organization, address="", by=boss)

    details = list(StaffChange.objects.filter(organization=organization, action=StaffChange.Action.POLICY_CHANGED)
                   .order_by("at", "id").values_list("detail", flat=True))
    assert details == ["AI results to the record system at mllps://engine.example.org:6661 (HL7 v2)",
                       "AI results to the record system at mllp://[::1]:2575 (HL7 v2)",
                       "AI results to the record system (HL7 v2) off"]


def test_a_finished_diagnosis_reaches_the_record_system_once_committed_and_is_acknowledged(
        engine, patient, clinician, tiny_model_version, django_capture_on_commit_callbacks):
    scan, delivery, callbacks = _diagnosed(patient, clinician, django_capture_on_commit_callbacks)
    assert engine.received == []  # nothing leaves before the result is committed

    services.hl7_deliver(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.ack_code, delivery.attempts, delivery.event) == (
        "delivered", "AA", 1, "diagnosis.finished")
    [sent] = engine.received
    assert sent == delivery.message and delivery.control_id in sent
    message = _parsed(sent)
    assert (message.msh.msh_5.value, message.msh.msh_6.value) == ("EPIC", "GENERAL")
    assert message.oru_r01_patient_result.oru_r01_patient.pid.pid_3.value.startswith("00123456^")
    group = message.oru_r01_patient_result.oru_r01_order_observation
    assert group.obr.obr_25.value == "P"
    label = scan.latest_prediction.label
    [ai] = [o.obx for o in group.oru_r01_observation if o.obx.obx_3.obx_3_1.value == "AI-CLASS"]
    assert f"^{label}^{label}^99KIDNEYWEB" in ai.obx_5.value  # what the real model found
    assert callbacks  # its task is sent once the transaction commits


def test_a_review_and_a_withdrawal_each_send_the_scans_state_then(
        engine, patient, clinician, tiny_model_version, django_capture_on_commit_callbacks):
    scan, first, _ = _diagnosed(patient, clinician, django_capture_on_commit_callbacks)
    services.hl7_deliver(delivery_id=first.pk)
    services.review_create(scan=scan, user=clinician, label="Cyst", prediction_id=scan.latest_prediction.pk)
    reviewed = Hl7Delivery.objects.filter(scan=scan).latest("id")
    services.hl7_deliver(delivery_id=reviewed.pk)
    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")
    withdrawn = Hl7Delivery.objects.filter(scan=scan).latest("id")
    services.hl7_deliver(delivery_id=withdrawn.pk)

    assert [d.event for d in Hl7Delivery.objects.filter(scan=scan).order_by("id")] == [
        "diagnosis.finished", "review.saved", "scan.withdrawn"]
    statuses = []
    for text in engine.received:
        group = _parsed(text).oru_r01_patient_result.oru_r01_order_observation
        statuses.append((group.obr.obr_25.value, sorted({o.obx.obx_11.value for o in group.oru_r01_observation})))
    assert statuses == [("P", ["P"]), ("F", ["F"]), ("C", ["W"])]


def test_a_message_retried_after_a_later_change_states_the_later_one_and_is_not_sent_twice(
        engine, patient, clinician, tiny_model_version, django_capture_on_commit_callbacks):
    scan, first, _ = _diagnosed(patient, clinician, django_capture_on_commit_callbacks)
    services.review_create(scan=scan, user=clinician, label="Cyst", prediction_id=scan.latest_prediction.pk)
    second = Hl7Delivery.objects.filter(scan=scan).latest("id")

    services.hl7_deliver(delivery_id=second.pk)  # the review's message overtakes the diagnosis's (a retry)
    services.hl7_deliver(delivery_id=first.pk)

    first.refresh_from_db()
    second.refresh_from_db()
    assert len(engine.received) == 1  # the record system never goes back to the preliminary result
    assert _parsed(engine.received[0]).oru_r01_patient_result.oru_r01_order_observation.obr.obr_25.value == "F"
    assert first.status == "delivered" and first.control_id == second.control_id


def test_an_engine_that_is_down_or_hangs_up_is_tried_again_and_one_that_rejects_fails_with_its_reason(
        engine, organization, patient, clinician, boss, tiny_model_version, django_capture_on_commit_callbacks,
        monkeypatch):
    scan, delivery, _ = _diagnosed(patient, clinician, django_capture_on_commit_callbacks)
    engine.answers[:] = ["close", "silent", "other", "AE", "AR"]
    monkeypatch.setattr(mllp, "TIMEOUT_SECONDS", 1)

    with pytest.raises(outbound.NotDelivered, match="closed the connection"):
        services.hl7_deliver(delivery_id=delivery.pk)
    with pytest.raises(outbound.NotDelivered, match="No answer from the record system within 1 s"):
        services.hl7_deliver(delivery_id=delivery.pk)
    with pytest.raises(outbound.NotDelivered, match=r"acknowledged another message \(0{20}\) instead of this one"):
        services.hl7_deliver(delivery_id=delivery.pk)
    with pytest.raises(outbound.NotDelivered, match=r"could not file the message \(AE\): Patient not found"):
        services.hl7_deliver(delivery_id=delivery.pk)
    retried = Hl7Delivery.objects.get(pk=delivery.pk)
    assert (retried.status, retried.attempts, retried.ack_code) == ("pending", 4, "AE")  # recorded, then tried again
    assert retried.last_error == "The record system could not file the message (AE): Patient not found."
    rejected = services.hl7_deliver(delivery_id=delivery.pk)

    assert (rejected.status, rejected.attempts, rejected.ack_code) == ("failed", 5, "AR")
    assert rejected.last_error == "The record system rejected the message (AR): Patient not found."
    assert len(engine.received) == 5

    again = services.hl7_send_again(delivery=rejected, by=boss)
    assert (again.status, again.attempts, again.sent_again_by) == ("pending", 0, boss)
    assert services.hl7_deliver(delivery_id=delivery.pk).status == "delivered"
    with pytest.raises(ValidationError, match="Only a message the record system did not take"):
        services.hl7_send_again(delivery=rejected, by=boss)


def test_nobody_listening_is_not_reached_and_given_up_after_the_last_attempt(
        organization, boss, patient, clinician, tiny_model_version, allow_plain, django_capture_on_commit_callbacks):
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    services.hl7_feed_set(organization=organization, address=f"mllp://127.0.0.1:{port}", by=boss)
    _, delivery, _ = _diagnosed(patient, clinician, django_capture_on_commit_callbacks)

    for _ in range(outbound.MAX_ATTEMPTS - 1):
        with pytest.raises(outbound.NotDelivered, match="Not reached"):
            services.hl7_deliver(delivery_id=delivery.pk)
    assert Hl7Delivery.objects.get(pk=delivery.pk).last_error.startswith("Not reached")
    given_up = services.hl7_deliver(delivery_id=delivery.pk)

    assert given_up.status == "failed" and given_up.last_error.startswith(f"Gave up after {outbound.MAX_ATTEMPTS}")


def test_over_tls_the_engines_certificate_is_checked(organization, boss, patient, clinician, tiny_model_version,
                                                      tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    cert, key = certificates.issue("test engine", ca=True, host="127.0.0.1").write(tmp_path, "engine")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener, server = mllp_receiver.start(tls=context)
    try:
        services.hl7_feed_set(organization=organization, address=listener.address, by=boss)
        _, untrusted, _ = _diagnosed(patient, clinician, django_capture_on_commit_callbacks)
        with pytest.raises(outbound.NotDelivered, match="TLS with the record system failed"):
            services.hl7_deliver(delivery_id=untrusted.pk)
        assert listener.received == []  # nothing of the patient left over an unchecked connection

        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the hospital's CA, as a deployment sets it
        assert services.hl7_deliver(delivery_id=untrusted.pk).status == "delivered"
        assert len(listener.received) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_a_message_of_an_erased_record_is_not_sent(engine, patient, clinician, tiny_model_version,
                                                   django_capture_on_commit_callbacks):
    scan, delivery, _ = _diagnosed(patient, clinician, django_capture_on_commit_callbacks)
    Hl7Delivery.objects.filter(pk=delivery.pk).update(attempts=1)
    # As an erasure deletes it between the delivery's first check and the message's build.
    real = Scan.objects.select_for_update

    def erased(*args, **kwargs):
        Scan.objects.filter(pk=scan.pk).delete()
        return real(*args, **kwargs)

    with mock.patch.object(Scan.objects, "select_for_update", erased):
        assert services.hl7_deliver(delivery_id=delivery.pk) is None
    assert engine.received == [] and not Hl7Delivery.objects.filter(pk=delivery.pk).exists()


def test_no_message_without_an_address_and_none_once_it_was_turned_off(
        organization, boss, engine, patient, clinician, tiny_model_version, django_capture_on_commit_callbacks):
    _, delivery, _ = _diagnosed(patient, clinician, django_capture_on_commit_callbacks)
    services.hl7_feed_set(organization=organization, address="", by=boss)

    turned_off = services.hl7_deliver(delivery_id=delivery.pk)
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("t.png", image_bytes("PNG", (41, 41))),
                                uploaded_by=clinician)
    services.prediction_run(prediction_id=scan.latest_prediction.pk)

    assert turned_off.status == "failed" and "turned off before it left" in turned_off.last_error
    assert not Hl7Delivery.objects.filter(scan=scan).exists() and engine.received == []


def test_an_acknowledgement_is_read_from_its_msa_and_err():
    ack = mllp.parse_ack(b"MSH|^~\\&|E|H|K|O|20261207||ACK|1|P|2.5.1\rMSA|AE|abc\rERR||||E||||Unknown^patient\r")
    assert (ack.code, ack.control_id, ack.text, ack.accepted, ack.rejected) == ("AE", "abc", "Unknown patient",
                                                                                False, False)
    with pytest.raises(mllp.NotAcknowledged, match="other than an HL7 acknowledgement"):
        mllp.parse_ack(b"HTTP/1.1 400 Bad Request\r\n")


def test_earlier_results_are_sent_once_each_as_they_stand_and_never_for_withdrawn_scans_or_the_future(
        organization, boss, clinician, allow_plain, django_capture_on_commit_callbacks, monkeypatch):
    from django.utils import timezone

    from diagnosis.services import hl7_feed

    from .factories import DonePredictionFactory, ScanFactory

    days_ago = [timezone.now() - datetime.timedelta(days=days) for days in (10, 3, 1, 1)]
    old, recent, sent, withdrawn = (DonePredictionFactory(scan=ScanFactory(patient__organization=organization),
                                                          finished_at=at) for at in days_ago)
    with pytest.raises(ValidationError, match="Set the record system's HL7 address first"):
        services.hl7_send_since(organization=organization, since=datetime.date.today(), by=boss)
    organization = services.hl7_feed_set(organization=organization, address="mllp://127.0.0.1:2575", by=boss)
    Hl7Delivery.objects.create(organization=organization, scan=sent.scan, event="diagnosis.finished",
                               url="mllp://127.0.0.1:2575")
    services.scan_withdraw(scan=withdrawn.scan, user=boss, reason="wrong patient")
    Hl7Delivery.objects.filter(scan=withdrawn.scan).delete()  # as if sent nothing before the withdrawal

    with pytest.raises(ValidationError, match="a day that has passed"):
        services.hl7_send_since(organization=organization, since=datetime.date.today() + datetime.timedelta(days=1),
                                by=boss)
    monkeypatch.setattr(hl7_feed, "MAX_BACKFILL", 0)
    with pytest.raises(ValidationError, match="More than 0 results"):
        services.hl7_send_since(organization=organization, since=timezone.localdate() - datetime.timedelta(days=5),
                                by=boss)
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = services.hl7_send_since(organization=organization,
                                         since=timezone.localdate() - datetime.timedelta(days=5), by=boss)
    again = services.hl7_send_since(organization=organization,
                                    since=timezone.localdate() - datetime.timedelta(days=5), by=boss)

    assert (queued, again, len(callbacks)) == (1, 0, 1)
    assert list(Hl7Delivery.objects.filter(event="earlier.result").values_list("scan", flat=True)) == [recent.scan_id]
    assert not Hl7Delivery.objects.filter(scan=old.scan).exists()
    assert StaffChange.objects.filter(detail__startswith="1 earlier result to the record system").exists()


def test_a_record_system_that_requires_a_client_certificate_refuses_none_for_good_then_takes_the_hospitals(
        organization, boss, patient, clinician, tiny_model_version, tmp_path, monkeypatch,
        django_capture_on_commit_callbacks):
    hospital_ca = certificates.issue("St. Elsewhere CA", ca=True)
    (tmp_path / "hospital-ca.pem").write_text(hospital_ca.pem)
    cert, key = certificates.issue("test engine", ca=True, host="127.0.0.1").write(tmp_path, "engine")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(tmp_path / "hospital-ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: only the hospital's certificates
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    listener, server = mllp_receiver.start(tls=context)
    try:
        organization = services.hl7_feed_set(organization=organization, address=listener.address, by=boss)
        _, delivery, _ = _diagnosed(patient, clinician, django_capture_on_commit_callbacks)

        refused = services.hl7_deliver(delivery_id=delivery.pk)
        assert (refused.status, refused.attempts) == ("failed", 1)  # no retry can change that answer
        assert refused.last_error.startswith("The record system asks for a client certificate")
        assert "on the Members page" in refused.last_error

        ours = certificates.client("kidneyweb", by=hospital_ca)
        services.pacs_client_certificate_set(organization=organization, certificate=ours.pem, key=ours.key_pem(),
                                             by=boss)
        services.hl7_send_again(delivery=refused, by=boss)
        assert services.hl7_deliver(delivery_id=delivery.pk).status == "delivered"
        assert len(listener.received) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_after_an_outage_each_scan_whose_newest_message_was_not_taken_is_sent_again_once(
        organization, boss, allow_plain, django_capture_on_commit_callbacks):
    from .factories import ScanFactory

    with pytest.raises(ValidationError, match="Set the record system's HL7 address first"):
        services.hl7_send_failed_again(organization=organization, by=boss)
    organization = services.hl7_feed_set(organization=organization, address="mllp://127.0.0.1:2575", by=boss)
    down, recovered, fine = (ScanFactory(patient__organization=organization) for _ in range(3))

    def message(scan, status):
        return Hl7Delivery.objects.create(organization=organization, scan=scan, event="review.saved",
                                          url=organization.hl7_address, status=status)

    older, newest = message(down, "failed"), message(down, "failed")
    message(recovered, "failed")
    message(recovered, "delivered")  # a later change of it went through: the failed one is moot
    message(fine, "delivered")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sent = services.hl7_send_failed_again(organization=organization, by=boss)

    assert (sent, len(callbacks)) == (1, 1)
    older.refresh_from_db(), newest.refresh_from_db()
    assert (older.status, newest.status, newest.sent_again_by) == ("failed", "pending", boss)


def test_with_the_sites_public_address_set_a_sent_message_links_the_pdf_report(
        engine, patient, clinician, tiny_model_version, settings, django_capture_on_commit_callbacks):
    settings.KIDNEYWEB_PUBLIC_URL = "https://kidneyweb.example.org"
    scan, delivery, _ = _diagnosed(patient, clinician, django_capture_on_commit_callbacks)

    services.hl7_deliver(delivery_id=delivery.pk)

    [sent] = engine.received
    assert f"|RP|PDF-REPORT^PDF report^99KIDNEYWEB||https://kidneyweb.example.org/api/v1/scans/{scan.pk}/report/" in sent
