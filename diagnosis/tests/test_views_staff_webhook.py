"""Result notifications on the Members page: an administrator sets the address, sees the secret once and
the latest deliveries; a bad address is explained; clinicians cannot change it."""

import pytest
from django.urls import reverse

from diagnosis.models import WebhookDelivery

URL = "https://ris.example.org/kidneyweb"


@pytest.fixture
def admin_client(client, boss):
    client.force_login(boss)
    return client


def test_setting_the_address_shows_a_new_secret_once(admin_client, organization):
    response = admin_client.post(reverse("diagnosis:staff_webhook"), {"url": URL})

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    organization.refresh_from_db()
    assert f'<code id="secret">{organization.webhook_secret}</code>' in response.content.decode()
    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    assert f"Now sent to\n    <code>{URL}</code>" in page
    assert organization.webhook_secret not in page


def test_a_bad_address_is_explained_and_nothing_changes(admin_client, organization):
    response = admin_client.post(reverse("diagnosis:staff_webhook"), {"url": "ftp://ris.example.org/x"})

    assert response.status_code == 400 and "Enter an address starting with https://" in response.content.decode()
    organization.refresh_from_db()
    assert organization.webhook_url == ""


def test_the_latest_deliveries_are_listed_with_how_they_went(admin_client, organization):
    WebhookDelivery.objects.create(organization=organization, event="diagnosis.finished", url=URL,
                                   payload={"scan": {"id": 41}}, status="failed", attempts=6, response_status=503,
                                   last_error="Gave up after 6 attempts. The receiver answered 503 Service Unavailable.")

    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()

    assert "diagnosis.finished (scan 41)" in page and "Gave up after 6 attempts" in page


def test_clearing_the_address_turns_notifications_off(admin_client, organization):
    admin_client.post(reverse("diagnosis:staff_webhook"), {"url": URL})

    response = admin_client.post(reverse("diagnosis:staff_webhook"), {"url": ""}, follow=True)

    assert "Result notifications are off." in response.content.decode()
    organization.refresh_from_db()
    assert organization.webhook_url == ""


def test_clinicians_cannot_set_it(ui_client, organization):
    ui_client.post(reverse("diagnosis:staff_webhook"), {"url": URL})

    organization.refresh_from_db()
    assert organization.webhook_url == ""
