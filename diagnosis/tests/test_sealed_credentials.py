"""The archive's password and the notification secret: sealed in the database, opened only with this server's
keys, kept through a key change, and never lost or sent wrong when no key opens them."""

import json

import pytest
from django.core import serializers
from django.core.exceptions import ValidationError
from django.db import connection

from diagnosis import sealed, services
from diagnosis.models import Organization, PacsDelivery, WebhookDelivery

from .factories import PacsDeliveryFactory

PASSWORD = "archive-pw-Ω-7"


def _stored(organization: Organization, column: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM diagnosis_organization WHERE id = %s", [organization.pk])
        return cursor.fetchone()[0]


@pytest.fixture
def archive(organization, boss):
    return services.pacs_set(organization=organization, url="https://pacs.example.org/dicom-web", username="ai",
                             password=PASSWORD, by=boss)


def test_the_archive_password_and_the_notification_secret_are_stored_sealed_and_read_in_clear(archive, boss):
    secret = services.webhook_set(organization=archive, url="https://ris.example.org/hook", by=boss)

    stored_password, stored_secret = _stored(archive, "pacs_password"), _stored(archive, "webhook_secret")
    assert stored_password.startswith("sealed:v1:") and stored_secret.startswith("sealed:v1:")
    assert PASSWORD not in stored_password and secret not in stored_secret
    fresh = Organization.objects.get(pk=archive.pk)
    assert (fresh.pacs_password, fresh.webhook_secret) == (PASSWORD, secret)
    archive.save()  # sealed anew each time, with a fresh nonce
    assert _stored(archive, "pacs_password") != stored_password
    assert Organization.objects.get(pk=archive.pk).pacs_password == PASSWORD


def test_a_sealed_value_moved_into_another_field_or_altered_does_not_open(archive):
    stored = _stored(archive, "pacs_password")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE diagnosis_organization SET webhook_secret = %s WHERE id = %s", [stored, archive.pk])
    moved = Organization.objects.get(pk=archive.pk).webhook_secret
    assert isinstance(moved, sealed.Unreadable) and moved == "" and "fails its check" in moved.reason

    altered = stored[:-6] + ("AAAA==" if not stored.endswith("AAAA==") else "BBBB==")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE diagnosis_organization SET pacs_password = %s WHERE id = %s", [altered, archive.pk])
    assert isinstance(Organization.objects.get(pk=archive.pk).pacs_password, sealed.Unreadable)


def test_an_unreadable_credential_is_written_back_unchanged_when_its_organization_is_saved(archive, settings):
    stored = _stored(archive, "pacs_password")
    settings.KIDNEYWEB_CREDENTIALS_KEY = sealed.generate_key()
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40

    organization = Organization.objects.get(pk=archive.pk)
    assert isinstance(organization.pacs_password, sealed.Unreadable)
    organization.name = "St. Elsewhere (renamed)"
    organization.save()

    assert _stored(archive, "pacs_password") == stored  # kept for when the right key is back


def test_a_send_whose_password_no_key_opens_fails_at_once_saying_which_key_it_needs(archive, settings):
    delivery = PacsDeliveryFactory(prediction__scan__patient__organization=archive)
    key_id = _stored(archive, "pacs_password").split(":")[2]
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40  # a new server, say, without the old one

    failed = services.pacs_deliver(delivery_id=delivery.pk)

    assert (failed.status, failed.attempts) == (PacsDelivery.Status.FAILED, 1)
    assert failed.last_error.startswith("Not sent: The archive password stored here was sealed with a key this "
                                        f"server does not have (key id {key_id})")
    assert "set the archive password anew on the Members page" in failed.last_error
    with pytest.raises(ValidationError, match="key this server does not have"):
        services.pacs_check(organization=Organization.objects.get(pk=archive.pk))


def test_a_notification_whose_secret_no_key_opens_is_not_sent_unsigned(organization, boss, settings):
    services.webhook_set(organization=organization, url="https://ris.example.org/hook", by=boss)
    delivery = services.webhook_ping(organization=organization, by=boss)
    settings.KIDNEYWEB_CREDENTIALS_KEY = sealed.generate_key()
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40

    failed = services.webhook_deliver(delivery_id=delivery.pk)

    assert (failed.status, failed.response_status) == (WebhookDelivery.Status.FAILED, None)
    assert "The notification secret stored here was sealed with a key this server does not have" in failed.last_error


def test_a_backup_holds_the_credentials_sealed_and_a_restore_opens_them(archive):
    dumped = serializers.serialize("json", [archive])
    assert PASSWORD not in dumped and '"pacs_password": "sealed:v1:' in dumped.replace("\n", "")

    Organization.objects.filter(pk=archive.pk).update(pacs_username="")
    for restored in serializers.deserialize("json", dumped):
        restored.save()

    organization = Organization.objects.get(pk=archive.pk)
    assert (organization.pacs_username, organization.pacs_password) == ("ai", PASSWORD)


def test_a_credential_written_in_clear_by_an_older_version_is_read_and_sealed_at_the_next_save(organization):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE diagnosis_organization SET pacs_password = 'old-clear' WHERE id = %s", [organization.pk])
    fresh = Organization.objects.get(pk=organization.pk)
    assert fresh.pacs_password == "old-clear"

    fresh.save()

    assert _stored(fresh, "pacs_password").startswith("sealed:v1:")
    assert json.loads(serializers.serialize("json", [fresh]))[0]["fields"]["pacs_password"].startswith("sealed:v1:")
