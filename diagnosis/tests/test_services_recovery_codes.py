"""Recovery codes: shown once when the authenticator app is set up, each finishes one login without the
phone, never stored in clear, slowed down when guessed, and gone with the setup they belong to."""

import re
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from diagnosis import selectors, services
from diagnosis.models import RecoveryCodes

from .totp import totp

pytestmark = pytest.mark.django_db

CODE = re.compile(r"^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$")


def _set_up(user) -> tuple[bytes, tuple[str, ...]]:
    device = services.two_factor_setup_start(user=user)
    _, codes = services.two_factor_setup_confirm(user=user, token=totp(device.bin_key))
    return device.bin_key, codes


def test_setting_up_the_app_gives_ten_distinct_codes_that_are_easy_to_copy(nurse):
    _, codes = _set_up(nurse)

    assert len(set(codes)) == 10
    assert all(CODE.match(code) and not set(code) & set("01ilo") for code in codes)
    assert selectors.recovery_codes_left(user=nurse) == 10


def test_a_recovery_code_finishes_a_login_once_and_is_logged(nurse, caplog):
    _, codes = _set_up(nurse)

    device = services.two_factor_recover(user=nurse, code=codes[3])
    assert "nurse finished a login with a recovery code (9 left)" in caplog.text
    assert device.user == nurse and device.persistent_id  # what django_otp.login records in the session
    assert selectors.recovery_codes_left(user=nurse) == 9
    time.sleep(1.1)
    with pytest.raises(ValidationError, match="wrong or has been used"):
        services.two_factor_recover(user=nurse, code=codes[3])
    time.sleep(2.1)
    services.two_factor_recover(user=nurse, code=codes[4])
    assert selectors.recovery_codes_left(user=nurse) == 8


def test_a_code_is_accepted_as_people_type_it(nurse):
    _, codes = _set_up(nurse)

    services.two_factor_recover(user=nurse, code=f"  {codes[0].upper().replace('-', ' ')} ")
    services.two_factor_recover(user=nurse, code=codes[1].replace("-", ""))
    assert selectors.recovery_codes_left(user=nurse) == 8


def test_codes_are_stored_only_as_salted_digests(nurse, boss):
    _, codes = _set_up(nurse)
    _, boss_codes = _set_up(boss)

    with connection.cursor() as cursor:
        cursor.execute("SELECT digest FROM diagnosis_recoverycode")
        stored = [row[0] for row in cursor.fetchall()]
    assert len(stored) == 20
    typed = {code.replace("-", "") for code in codes + boss_codes}
    assert not any(code in digest for digest in stored for code in typed)
    # The same code digests differently for two people: one table of precomputed digests opens no one's.
    assert RecoveryCodes.objects.get(user=nurse).digest(codes[0]) != RecoveryCodes.objects.get(user=boss).digest(codes[0])


def test_a_code_of_someone_else_opens_nothing(nurse, boss):
    _set_up(nurse)
    _, boss_codes = _set_up(boss)

    with pytest.raises(ValidationError, match="wrong or has been used"):
        services.two_factor_recover(user=nurse, code=boss_codes[0])
    assert selectors.recovery_codes_left(user=boss) == 10


def test_wrong_codes_make_the_next_try_wait(nurse):
    _, codes = _set_up(nurse)
    for _ in range(3):
        with pytest.raises(ValidationError):
            services.two_factor_recover(user=nurse, code="aaaa-bbbb-cccc")

    with pytest.raises(ValidationError, match="Too many wrong codes"):
        services.two_factor_recover(user=nurse, code=codes[0])  # even a right one, for now
    assert selectors.recovery_codes_left(user=nurse) == 10


def test_new_codes_need_the_app_and_replace_the_old_ones(nurse):
    key, old = _set_up(nurse)

    with pytest.raises(ValidationError, match="That code is wrong"):
        services.recovery_codes_renew(user=nurse, token="000000" if totp(key, time.time() + 30) != "000000" else "111111")
    assert selectors.recovery_codes_left(user=nurse) == 10
    time.sleep(1.1)

    new = services.recovery_codes_renew(user=nurse, token=totp(key, time.time() + 30))
    assert not set(new) & set(old)
    with pytest.raises(ValidationError, match="wrong or has been used"):
        services.two_factor_recover(user=nurse, code=old[0])
    time.sleep(1.1)
    services.two_factor_recover(user=nurse, code=new[0])


def test_setting_up_another_phone_gives_a_new_set(nurse):
    _, old = _set_up(nurse)
    _, new = _set_up(nurse)

    assert not set(new) & set(old)
    assert selectors.recovery_codes_left(user=nurse) == 10
    assert RecoveryCodes.objects.filter(user=nurse).count() == 1


def test_codes_go_with_the_setup_they_belong_to(organization, nurse, boss):
    key, codes = _set_up(nurse)
    services.two_factor_disable(user=nurse, token=totp(key, time.time() + 30))
    assert selectors.recovery_codes_left(user=nurse) is None
    with pytest.raises(ValidationError, match="no recovery codes"):
        services.two_factor_recover(user=nurse, code=codes[0])

    _, codes = _set_up(nurse)
    services.member_two_factor_reset(organization=organization, member=nurse, by=boss)  # the lost phone's codes too
    assert selectors.recovery_codes_left(user=nurse) is None
    with pytest.raises(ValidationError, match="no recovery codes"):
        services.two_factor_recover(user=nurse, code=codes[0])


def test_without_codes_a_member_is_sent_to_their_administrator_and_a_superuser_outside_any_to_the_operator(nurse, db):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.org", "x" * 16)

    with pytest.raises(ValidationError, match="An administrator of your organization can reset"):
        services.two_factor_recover(user=nurse, code="abcd-efgh-jkmn")
    with pytest.raises(ValidationError, match="The server's operator can reset"):
        services.two_factor_recover(user=root, code="abcd-efgh-jkmn")
