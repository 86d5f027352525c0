"""Result notifications on the Members page: an administrator sets the address, sees the secret once and
the latest deliveries; a bad address is explained; clinicians cannot change it."""

import pytest
from django.urls import reverse

from diagnosis.models import WebhookDelivery

URL = "https://ris.example.org/kidneyweb"

# Sent until an administrator chooses otherwise.
EVERY_EVENT = ["diagnosis.finished", "review.saved", "scan.withdrawn", "scan.restored", "patient.merged",
               "patient.unmerged", "patient.erased", "erasure.archive_given_up", "model.below_card", "model.recovered",
               "model.inputs_unusual", "model.inputs_usual", "api_token.expiring"]


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


def _failed(organization, **fields) -> WebhookDelivery:
    return WebhookDelivery.objects.create(organization=organization, event="diagnosis.finished", url=URL,
                                          payload={"scan": {"id": 41}}, status="failed", attempts=6,
                                          last_error="Gave up after 6 attempts.", **fields)


def test_a_failed_notification_is_sent_again_from_the_list(admin_client, organization, boss,
                                                          django_capture_on_commit_callbacks):
    admin_client.post(reverse("diagnosis:staff_webhook"), {"url": URL})
    failed = _failed(organization)
    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    assert reverse("diagnosis:staff_webhook_send_again", args=[failed.pk]) in page

    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(reverse("diagnosis:staff_webhook_send_again", args=[failed.pk]), follow=True)

    failed.refresh_from_db()
    assert (failed.status, failed.sent_again_by) == (WebhookDelivery.Status.PENDING, boss)
    page = response.content.decode()
    assert "notification of" in page and "is being sent again." in page and "sent again" in page and "by boss" in page
    assert reverse("diagnosis:staff_webhook_send_again", args=[failed.pk]) not in page  # pending: no button


def test_sending_again_what_is_not_failed_is_explained(admin_client, organization):
    admin_client.post(reverse("diagnosis:staff_webhook"), {"url": URL})
    delivered = _failed(organization)
    WebhookDelivery.objects.filter(pk=delivered.pk).update(status="delivered")

    response = admin_client.post(reverse("diagnosis:staff_webhook_send_again", args=[delivered.pk]), follow=True)

    assert "Only a failed notification can be sent again; this one is delivered." in response.content.decode()


def test_another_organizations_notification_cannot_be_sent_again(admin_client, other_organization):
    theirs = _failed(other_organization)

    response = admin_client.post(reverse("diagnosis:staff_webhook_send_again", args=[theirs.pk]))

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == WebhookDelivery.Status.FAILED


def test_a_test_notification_is_queued_and_listed(admin_client, organization, django_capture_on_commit_callbacks):
    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    assert "Send a test notification" not in page  # no address yet
    admin_client.post(reverse("diagnosis:staff_webhook"), {"url": URL})

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(reverse("diagnosis:staff_webhook_test"), follow=True)

    assert len(callbacks) == 1
    assert WebhookDelivery.objects.get().event == "ping"
    page = response.content.decode()
    assert "A test notification is on its way" in page and "<td>ping</td>" in page


def test_clinicians_cannot_send_notifications(ui_client, organization):
    failed = _failed(organization)
    organization.webhook_url = URL
    organization.save()

    ui_client.post(reverse("diagnosis:staff_webhook_test"))
    ui_client.post(reverse("diagnosis:staff_webhook_send_again", args=[failed.pk]))

    assert list(WebhookDelivery.objects.values_list("status", flat=True)) == ["failed"]


def test_the_events_sent_are_chosen_with_checkboxes_and_the_secret_stays(admin_client, organization):
    admin_client.post(reverse("diagnosis:staff_webhook"), {"url": URL})
    organization.refresh_from_db()
    secret = organization.webhook_secret
    page = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    # All sent until chosen otherwise.
    assert page.count('name="events"') == len(EVERY_EVENT) and page.count("checked") >= len(EVERY_EVENT)

    response = admin_client.post(reverse("diagnosis:staff_webhook_events"), {"events": ["diagnosis.finished"]},
                                 follow=True)

    assert "Notifications are sent of diagnosis.finished." in response.content.decode()
    organization.refresh_from_db()
    assert (organization.webhook_events, organization.webhook_secret) == (["diagnosis.finished"], secret)


def test_an_unknown_event_is_a_form_error(admin_client, organization):
    admin_client.post(reverse("diagnosis:staff_webhook"), {"url": URL})

    response = admin_client.post(reverse("diagnosis:staff_webhook_events"), {"events": ["scan.deleted"]})

    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    organization.refresh_from_db()
    assert organization.webhook_events == EVERY_EVENT
