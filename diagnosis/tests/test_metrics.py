"""GET /metrics: the deployment's state for Prometheus, behind a bearer token, read from the database and the broker
at each scrape."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from diagnosis import services
from diagnosis.models import ApiToken, DicomStoreRefusal, InputsAlert, Organization, PacsDelivery, Prediction, WebhookDelivery

from training.tests.factories import TrainingRunFactory

from . import certificates
from .factories import (DonePredictionFactory, MembershipFactory, ModelVersionFactory, PacsDeliveryFactory,
                        PatientFactory, PredictionFactory, ReviewFactory, ScanFactory, image_bytes)

TOKEN = "s3cret-metrics-token"


@pytest.fixture
def metrics_on(settings):
    settings.KIDNEYWEB_METRICS_TOKEN = TOKEN


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}


def test_the_figures_are_the_deployments_state_now(client, metrics_on, organization, other_organization, clinician,
                                                   boss):
    active = ModelVersionFactory(is_active=True, name="kidney-resnet-v5")
    now = timezone.now()
    for org in (organization, other_organization):
        DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=org)), model_version=active,
                              finished_at=now - datetime.timedelta(minutes=5), inference_ms=20)
    reviewed = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)),
                                     model_version=active, finished_at=now - datetime.timedelta(hours=3))
    ReviewFactory(scan=reviewed.scan, prediction=reviewed)
    PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), model_version=active,
                      queued_at=now - datetime.timedelta(minutes=7))
    PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), model_version=active,
                      status=Prediction.Status.FAILED, finished_at=now - datetime.timedelta(minutes=1))
    InputsAlert.objects.create(organization=organization, model_version=active, out_of_scope=3, diagnosed=60)
    WebhookDelivery.objects.create(organization=organization, event="ping", payload={}, url="https://x.example/h",
                                   status=WebhookDelivery.Status.FAILED)
    services.worker_heartbeat_record(name="inference")
    TrainingRunFactory(status="failed")
    DicomStoreRefusal.objects.create(organization=organization, sent_by=clinician, failure_code=0x0110,
                                     reason="No patient with MRN 'X' in your organization", patient_id="X")
    PacsDeliveryFactory(prediction=reviewed, status="failed")
    services.organization_api_token_days_set(organization=organization, days=30, by=clinician)
    for age in (40, 20, 1):  # expired, expiring within 14 days, fresh
        services.api_token_rotate(user=MembershipFactory(organization=organization).user)
        ApiToken.objects.filter(pk=ApiToken.objects.latest("pk").pk).update(
            created=now - datetime.timedelta(days=age))
    ours = certificates.client("kidneyweb", by=certificates.issue("St. Elsewhere CA", ca=True))
    services.pacs_client_certificate_set(organization=organization, certificate=ours.pem, key=ours.key_pem(),
                                         by=clinician)

    erasures = [services.patient_erase(patient=PatientFactory(organization=organization, mrn=mrn), user=boss,
                                       reason="consent withdrawn", confirm_mrn=mrn) for mrn in ("E-1", "E-2")]
    services.erasure_files_remove(erasure_id=erasures[0].pk)  # the second one's images are still in storage
    services.record_export_request(patient=PatientFactory(organization=organization), user=boss,
                                   base_url="http://testserver/")
    # A patient whose result the archive stored, erased: the archive is asked to delete it, by a note not stored yet.
    Organization.objects.filter(pk=organization.pk).update(pacs_url="https://pacs.example.org/dicom-web")
    stored = PacsDeliveryFactory(prediction__scan__patient__organization=organization, status="delivered", attempts=1)
    services.patient_erase(patient=stored.scan.patient, user=boss, reason="consent withdrawn",
                           confirm_mrn=stored.scan.patient.mrn)
    # Another, given up: its note keeps nothing of the patient any more, so it is not counted.
    given_up = PacsDeliveryFactory(prediction__scan__patient__organization=organization, status="delivered",
                                   attempts=1)
    erased = services.patient_erase(patient=given_up.scan.patient, user=boss, reason="consent withdrawn",
                                    confirm_mrn=given_up.scan.patient.mrn)
    PacsDelivery.objects.filter(erasure=erased).update(status="failed")
    services.pacs_erasure_give_up(erasure=erased, by=boss)

    samples = scrape(client)

    assert samples[("kidneyweb_erasures_files_pending", ())] == 3
    assert samples[("kidneyweb_erasure_archive_notes_unstored", ())] == 1
    assert samples[("kidneyweb_record_exports_pending", ())] == 1
    assert samples[("kidneyweb_predictions_total", (("status", "done"),))] == 3
    assert samples[("kidneyweb_predictions_total", (("status", "queued"),))] == 1
    assert samples[("kidneyweb_predictions_total", (("status", "failed"),))] == 1
    assert samples[("kidneyweb_prediction_oldest_waiting_seconds", ())] == pytest.approx(420, abs=30)
    assert samples[("kidneyweb_predictions_last_hour", (("status", "done"),))] == 2
    assert samples[("kidneyweb_predictions_last_hour", (("status", "failed"),))] == 1
    assert samples[("kidneyweb_inference_seconds_last_hour", ())] == pytest.approx(0.04)
    unreviewed = {labels[0][1]: value for (name, labels), value in samples.items()
                  if name == "kidneyweb_unreviewed_scans"}
    assert unreviewed == {organization.slug: 3, other_organization.slug: 1}  # its reviewed scan is not counted
    here = (("kind", "inputs"), ("organization", organization.slug))
    assert samples[("kidneyweb_open_alerts", here)] == 1
    assert samples[("kidneyweb_open_alerts", (("kind", "inputs"), ("organization", other_organization.slug)))] == 0
    assert samples[("kidneyweb_open_alerts", (("kind", "performance"), ("organization", organization.slug)))] == 0
    assert samples[("kidneyweb_training_runs", (("status", "failed"),))] == 1
    assert samples[("kidneyweb_training_runs", (("status", "running"),))] == 0
    assert samples[("kidneyweb_notifications", (("status", "failed"),))] == 1
    assert samples[("kidneyweb_archive_deliveries", (("status", "failed"),))] == 2  # with the note given up
    assert samples[("kidneyweb_archive_deliveries", (("status", "delivered"),))] == 0
    assert samples[("kidneyweb_worker_last_seen_seconds", (("worker", "inference"),))] < 30
    assert samples[("kidneyweb_active_model_info", (("name", "kidney-resnet-v5"),))] == 1
    assert samples[("kidneyweb_dicom_store_refusals_unresolved", ())] == 1
    # The other organization has nobody to manage its members: the figure an operator alerts on.
    assert samples[("kidneyweb_organization_administrators", (("organization", organization.slug),))] == 1
    assert samples[("kidneyweb_organization_administrators", (("organization", other_organization.slug),))] == 0
    tokens = {labels: value for (name, labels), value in samples.items() if name == "kidneyweb_api_tokens"}
    assert tokens == {(("organization", organization.slug), ("state", "expired")): 1,
                      (("organization", organization.slug), ("state", "expiring")): 1}  # none for the other
    expiry = {labels: value for (name, labels), value in samples.items()
              if name == "kidneyweb_archive_client_certificate_expiry_seconds"}
    assert expiry == {(("organization", organization.slug),): pytest.approx(
        (ours.certificate.not_valid_after_utc - timezone.now()).total_seconds(), abs=60)}


def test_the_queue_lengths_are_read_from_the_broker(client, metrics_on, organization, clinician, active_model_version,
                                                    inference_queue, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    before = scrape(client)[("kidneyweb_queue_messages", (("queue", "inference"),))]
    with django_capture_on_commit_callbacks(execute=True):
        services.scan_create(patient=PatientFactory(organization=organization), uploaded_by=clinician,
                             file=SimpleUploadedFile("s.png", image_bytes("PNG", (64, 64))))

    assert (before, scrape(client)[("kidneyweb_queue_messages", (("queue", "inference"),))]) == (0, 1)


def test_a_broker_that_does_not_answer_leaves_out_the_queue_lengths_only(client, metrics_on, broker_down, db):
    samples = scrape(client)

    assert not any(name == "kidneyweb_queue_messages" for name, _ in samples)
    assert samples[("kidneyweb_predictions_total", (("status", "done"),))] == 0


def test_without_the_token_nothing_is_shown_and_without_a_configured_token_the_endpoint_is_off(client, settings, db):
    settings.KIDNEYWEB_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404
    settings.KIDNEYWEB_METRICS_TOKEN = TOKEN
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Token {TOKEN}"}):
        refused = client.get("/metrics", **header)
        assert refused.status_code == 401 and refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"kidneyweb_" not in refused.content
