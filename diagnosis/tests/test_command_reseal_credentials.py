"""manage.py reseal_credentials: stored credentials sealed anew with the current key after a key change, and those
no key opens named and left alone."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from diagnosis import sealed, services
from diagnosis.models import Organization

from .factories import OrganizationFactory
from .test_sealed_credentials import PASSWORD, _stored, archive  # noqa: F401 (a fixture)


def test_a_new_key_reads_what_the_old_one_sealed_until_everything_is_resealed(archive, settings):
    old_id = _stored(archive, "pacs_password").split(":")[2]
    settings.KIDNEYWEB_CREDENTIALS_KEY = sealed.generate_key()  # SECRET_KEY's key stays readable
    assert Organization.objects.get(pk=archive.pk).pacs_password == PASSWORD

    out = io.StringIO()
    call_command("reseal_credentials", stdout=out)

    assert "1 stored credential(s) sealed with the current key" in out.getvalue()
    new_id = _stored(archive, "pacs_password").split(":")[2]
    assert new_id != old_id
    replaced, settings.KIDNEYWEB_CREDENTIALS_KEY = settings.KIDNEYWEB_CREDENTIALS_KEY, sealed.generate_key()
    settings.KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS = [replaced]  # a second rotation: the first key now previous
    call_command("reseal_credentials", stdout=io.StringIO())
    settings.KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS = []
    assert Organization.objects.get(pk=archive.pk).pacs_password == PASSWORD


def test_a_changed_secret_key_reads_through_its_fallback_until_resealed(archive, settings):
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-new-secret-key-" + "y" * 40
    assert Organization.objects.get(pk=archive.pk).pacs_password == PASSWORD

    call_command("reseal_credentials", stdout=io.StringIO())
    settings.SECRET_KEY_FALLBACKS = []

    assert Organization.objects.get(pk=archive.pk).pacs_password == PASSWORD


def test_resealing_names_the_organizations_it_cannot_open_and_fails_without_touching_them(archive, settings):
    other = OrganizationFactory(name="Elsewhere General")
    other.webhook_secret = "o" * 64
    other.save()
    stored = _stored(archive, "pacs_password")
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = []
    with connection.cursor() as cursor:  # Elsewhere General's secret is sealed anew under the new key
        cursor.execute("UPDATE diagnosis_organization SET webhook_secret = %s WHERE id = %s",
                       [sealed.seal("o" * 64, label="notification secret"), other.pk])

    err = io.StringIO()
    with pytest.raises(CommandError, match=r"1 stored credential\(s\) could not be opened and are unchanged; 1 other"):
        call_command("reseal_credentials", stdout=io.StringIO(), stderr=err)

    assert err.getvalue().startswith("St. Elsewhere: The archive password stored here was sealed with a key")
    assert _stored(archive, "pacs_password") == stored


def test_a_new_key_is_printed_on_request_and_a_malformed_one_is_refused(archive, settings):
    out = io.StringIO()
    call_command("reseal_credentials", "--generate-key", stdout=out, stderr=io.StringIO())
    key = out.getvalue().strip()
    assert len(key) == 44 and key != sealed.generate_key()

    settings.KIDNEYWEB_CREDENTIALS_KEY = "too-short"
    with pytest.raises(Exception, match="KIDNEYWEB_CREDENTIALS_KEY is not a key"):
        Organization.objects.get(pk=archive.pk)


def test_authenticator_apps_are_resealed_and_keep_giving_the_same_codes(nurse, settings):
    from diagnosis.models import Authenticator

    from .totp import totp

    device = services.two_factor_setup_start(user=nurse)
    key = device.bin_key
    settings.KIDNEYWEB_CREDENTIALS_KEY = sealed.generate_key()

    out = io.StringIO()
    call_command("reseal_credentials", stdout=out)

    assert "1 stored credential(s) sealed" in out.getvalue()
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40  # SECRET_KEY's key is no longer needed
    reopened = Authenticator.objects.get()
    assert reopened.bin_key == key and totp(reopened.bin_key) == totp(key)


def test_an_authenticator_no_key_opens_is_named_by_its_member(nurse, settings):
    services.two_factor_setup_start(user=nurse)
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40

    err = io.StringIO()
    with pytest.raises(CommandError, match="1 stored credential"):
        call_command("reseal_credentials", stdout=io.StringIO(), stderr=err)

    assert err.getvalue().startswith("the authenticator app of nurse: The authenticator secret stored here was sealed")
