"""/api/v1/notifications/: the integrator of a hospital system sets where result notifications go and gets
the secret once, sends a test, lists the deliveries and sends a failed one again, as the schema says."""

import hashlib
import hmac

import pytest

from diagnosis import services
from diagnosis.models import StaffChange, WebhookDelivery

from . import openapi
from .factories import token_client

SETTINGS = "/api/v1/notifications/settings/"

# Sent until an administrator chooses otherwise.
EVERY_EVENT = ["diagnosis.finished", "review.saved", "scan.withdrawn", "scan.restored", "patient.merged",
               "patient.unmerged", "patient.erased", "erasure.archive_given_up", "model.below_card", "model.recovered",
               "model.inputs_unusual", "model.inputs_usual", "api_token.expiring"]


@pytest.fixture
def api(boss):
    return token_client(boss)


@pytest.fixture
def allow_http(settings):
    settings.KIDNEYWEB_WEBHOOK_ALLOW_HTTP = True  # the receiver here is plain http on localhost


def _failed(organization, **fields) -> WebhookDelivery:
    return WebhookDelivery.objects.create(organization=organization, event="diagnosis.finished",
                                          url="https://ris.example.org/hook", payload={"scan": {"id": 41}},
                                          status="failed", attempts=6, last_error="Gave up after 6 attempts.", **fields)


def test_setting_the_address_answers_its_secret_once_and_reading_it_back_does_not(client, api, organization):
    response = api.put(SETTINGS, {"url": "https://ris.example.org/kidneyweb"}, format="json")

    assert response.status_code == 200 and response["Cache-Control"] == "private, no-store"
    assert openapi.mismatches(openapi.load(client), SETTINGS, "put", response) == []
    organization.refresh_from_db()
    assert response.json() == {"url": "https://ris.example.org/kidneyweb", "secret": organization.webhook_secret,
                               "events": EVERY_EVENT}
    again = api.get(SETTINGS)
    assert again.json() == {"url": "https://ris.example.org/kidneyweb", "events": EVERY_EVENT}
    assert openapi.mismatches(openapi.load(client), SETTINGS, "get", again) == []
    assert StaffChange.objects.get().detail == "result notifications to ris.example.org (new secret)"


def test_a_bad_address_is_refused_with_the_reason_and_the_old_one_kept(api, organization):
    api.put(SETTINGS, {"url": "https://ris.example.org/kidneyweb"}, format="json")

    response = api.put(SETTINGS, {"url": "http://ris.example.org/plain"}, format="json")

    assert response.status_code == 400
    assert "Enter an address starting with https://" in response.json()["url"][0]
    organization.refresh_from_db()
    assert organization.webhook_url == "https://ris.example.org/kidneyweb"


def test_an_empty_address_turns_notifications_off(api, organization):
    api.put(SETTINGS, {"url": "https://ris.example.org/kidneyweb"}, format="json")

    response = api.put(SETTINGS, {"url": ""}, format="json")

    assert response.json() == {"url": "", "secret": None, "events": EVERY_EVENT}
    organization.refresh_from_db()
    assert organization.webhook_url == "" and organization.webhook_secret == ""


def test_a_test_notification_reaches_the_receiver_signed(client, api, organization, receiver, allow_http):
    secret = api.put(SETTINGS, {"url": receiver.url}, format="json").json()["secret"]

    response = api.post("/api/v1/notifications/test/")

    assert response.status_code == 202
    assert openapi.mismatches(openapi.load(client), "/api/v1/notifications/test/", "post", response) == []
    services.webhook_deliver(delivery_id=response.json()["id"])
    [request] = receiver.received
    assert request.headers["x-kidneyweb-event"] == "ping"
    assert request.headers["x-kidneyweb-delivery"] == response.json()["delivery"]
    assert request.headers["x-kidneyweb-signature"] == "sha256=" + hmac.new(
        secret.encode(), request.body, hashlib.sha256).hexdigest()


def test_a_test_without_an_address_is_refused_with_the_reason(api):
    response = api.post("/api/v1/notifications/test/")

    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Set an address for result notifications first."]}


def test_the_deliveries_are_listed_newest_first_with_how_they_went(client, api, organization, other_organization):
    older = _failed(organization)
    newer = WebhookDelivery.objects.create(organization=organization, event="ping", url="https://x.example/h",
                                           payload={"event": "ping"}, status="delivered", attempts=1, response_status=204)
    _failed(other_organization)

    response = api.get("/api/v1/notifications/")

    assert response.status_code == 200
    assert openapi.mismatches(openapi.load(client), "/api/v1/notifications/", "get", response) == []
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [newer.pk, older.pk]  # not another organization's
    assert (rows[0]["scan"], rows[0]["response_status"], rows[1]["scan"], rows[1]["last_error"]) == (
        None, 204, 41, "Gave up after 6 attempts.")
    one = api.get(f"/api/v1/notifications/{older.pk}/")
    assert one.json()["payload"] == {"scan": {"id": 41}}
    assert openapi.mismatches(openapi.load(client), "/api/v1/notifications/{id}/", "get", one) == []


def test_a_failed_notification_is_sent_again_and_says_by_whom(client, api, boss, organization,
                                                              django_capture_on_commit_callbacks):
    api.put(SETTINGS, {"url": "https://ris.example.org/kidneyweb"}, format="json")
    failed = _failed(organization)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(f"/api/v1/notifications/{failed.pk}/send-again/")

    assert response.status_code == 202 and len(callbacks) == 1
    assert openapi.mismatches(openapi.load(client), "/api/v1/notifications/{id}/send-again/", "post", response) == []
    body = response.json()
    assert (body["status"], body["attempts"], body["sent_again_by"]) == ("pending", 0, "boss")
    refused = api.post(f"/api/v1/notifications/{failed.pk}/send-again/")
    assert refused.status_code == 400
    assert refused.json() == {"non_field_errors": ["Only a failed notification can be sent again; this one is pending."]}


def test_another_organizations_notification_is_not_found(api, other_organization):
    theirs = _failed(other_organization)

    assert api.get(f"/api/v1/notifications/{theirs.pk}/").status_code == 404
    assert api.post(f"/api/v1/notifications/{theirs.pk}/send-again/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "failed"


def test_clinicians_may_not_manage_notifications(clinician, organization):
    api = token_client(clinician)

    for response in (api.get("/api/v1/notifications/"), api.get(SETTINGS),
                     api.put(SETTINGS, {"url": "https://evil.example/x"}, format="json")):
        assert response.status_code == 403
        assert response.json()["detail"] == "Only administrators of your organization may manage its result notifications."
    organization.refresh_from_db()
    assert organization.webhook_url == ""


def test_the_events_sent_are_chosen_without_changing_the_address_or_its_secret(client, api, organization):
    secret = api.put(SETTINGS, {"url": "https://ris.example.org/kidneyweb"}, format="json").json()["secret"]

    response = api.patch(SETTINGS, {"events": ["scan.withdrawn"]}, format="json")

    assert response.status_code == 200
    assert openapi.mismatches(openapi.load(client), SETTINGS, "patch", response) == []
    assert response.json() == {"url": "https://ris.example.org/kidneyweb", "events": ["scan.withdrawn"]}
    organization.refresh_from_db()
    assert organization.webhook_secret == secret
    bad = api.patch(SETTINGS, {"events": ["scan.deleted"]}, format="json")
    assert bad.status_code == 400 and "events" in bad.json()
    both = api.put(SETTINGS, {"url": "https://ris.example.org/v2", "events": []}, format="json")
    assert both.json()["events"] == [] and both.json()["url"] == "https://ris.example.org/v2"

