"""Two-factor authentication with an authenticator app: set up with a code the app shows, a code works
once, wrong codes slow guessing down, and an administrator resets a lost phone."""

import time

import pytest
from django.core.exceptions import ValidationError

from diagnosis import selectors, services
from diagnosis.models import Authenticator, StaffChange

from .totp import totp


def _set_up(user) -> bytes:
    device = services.two_factor_setup_start(user=user)
    services.two_factor_setup_confirm(user=user, token=totp(device.bin_key))
    return device.bin_key


def test_the_codes_are_those_of_rfc_6238():
    # RFC 6238 appendix B, SHA-1: at 59 s the 8-digit code is 94287082.
    assert totp(b"12345678901234567890", 59, digits=8) == "94287082"
    assert totp(b"12345678901234567890", 1111111109, digits=8) == "07081804"


def test_setting_up_needs_a_code_from_the_new_app(nurse):
    device = services.two_factor_setup_start(user=nurse)

    with pytest.raises(ValidationError, match="That code is wrong or has expired"):
        services.two_factor_setup_confirm(user=nurse, token="000000" if totp(device.bin_key) != "000000" else "111111")
    assert selectors.two_factor_device(user=nurse) is None

    time.sleep(1.1)  # a wrong code makes the next try wait a second
    services.two_factor_setup_confirm(user=nurse, token=" ".join([totp(device.bin_key)[:3], totp(device.bin_key)[3:]]))
    assert selectors.two_factor_device(user=nurse).pk == device.pk


def test_a_new_phone_replaces_the_old_one_only_once_confirmed(nurse):
    old = _set_up(nurse)
    new = services.two_factor_setup_start(user=nurse)

    assert services.two_factor_check(user=nurse, token=totp(old, time.time() + 30))  # the old one still works

    services.two_factor_setup_confirm(user=nurse, token=totp(new.bin_key))
    assert list(Authenticator.objects.filter(user=nurse).values_list("pk", flat=True)) == [new.pk]


def test_a_code_works_once(nurse):
    key = _set_up(nurse)  # uses the code of now
    code = totp(key, time.time() + 30)

    services.two_factor_check(user=nurse, token=code)
    with pytest.raises(ValidationError, match="That code is wrong"):
        services.two_factor_check(user=nurse, token=code)


def test_wrong_codes_make_the_next_try_wait(nurse):
    key = _set_up(nurse)
    wrong = "123456" if totp(key, time.time() + 30) != "123456" else "654321"
    for _ in range(3):
        with pytest.raises(ValidationError):
            services.two_factor_check(user=nurse, token=wrong)

    with pytest.raises(ValidationError, match="Too many wrong codes"):
        services.two_factor_check(user=nurse, token=totp(key, time.time() + 30))  # even the right one, for now


def test_turning_it_off_needs_a_code_and_is_refused_where_the_organization_requires_it(organization, nurse, boss):
    key = _set_up(nurse)
    services.organization_two_factor_require(organization=organization, required=True, by=boss)

    with pytest.raises(ValidationError, match="requires two-factor authentication of every member"):
        services.two_factor_disable(user=nurse, token=totp(key, time.time() + 30))
    assert selectors.two_factor_device(user=nurse) is not None

    services.organization_two_factor_require(organization=organization, required=False, by=boss)
    services.two_factor_disable(user=nurse, token=totp(key, time.time() + 30))
    assert not Authenticator.objects.filter(user=nurse).exists()
    assert [c.detail for c in selectors.staff_changes(organization=organization)] == [
        "two-factor authentication optional", "two-factor authentication required"]


def test_an_administrator_resets_a_lost_phone_and_it_is_recorded(organization, nurse, boss):
    _set_up(nurse)

    services.member_two_factor_reset(organization=organization, member=nurse, by=boss)

    assert selectors.two_factor_device(user=nurse) is None
    change = selectors.staff_changes(organization=organization).get()
    assert (change.member, change.by, change.action) == (nurse, boss, StaffChange.Action.TWO_FACTOR_RESET)
    with pytest.raises(ValidationError, match="You cannot reset two-factor authentication for yourself"):
        services.member_two_factor_reset(organization=organization, member=boss, by=boss)


def test_the_apps_secret_is_stored_sealed_and_the_codes_of_the_app_work(nurse):
    from django.db import connection

    key = _set_up(nurse)

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM diagnosis_authenticator WHERE user_id = %s", [nurse.pk])
        [stored] = cursor.fetchone()
    assert stored.startswith("sealed:v1:") and key.hex() not in stored.lower()
    assert services.two_factor_check(user=nurse, token=totp(key, time.time() + 30)).pk


def test_an_app_whose_secret_no_key_opens_is_refused_saying_what_to_do_and_a_recovery_code_still_works(
        nurse, settings):
    device = services.two_factor_setup_start(user=nurse)
    key = device.bin_key
    _, codes = services.two_factor_setup_confirm(user=nurse, token=totp(key))
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40  # a restore onto a server with another key, say

    with pytest.raises(ValidationError, match="its secret does not open with this server's keys. Use a recovery code"):
        services.two_factor_check(user=nurse, token=totp(key, time.time() + 30))

    assert services.two_factor_recover(user=nurse, code=codes[0])
