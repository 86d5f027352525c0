"""manage.py two_factor_reset: the server operator's reset of a lost phone, for those no administrator can
reset on the Members page (a site superuser outside any organization, an organization's only administrator)."""

import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError

from diagnosis import selectors, services
from diagnosis.models import Authenticator, Membership, RecoveryCodes, StaffChange

from .factories import PASSWORD, MembershipFactory
from .test_commands import call
from .totp import totp


def _set_up(user) -> None:
    device = services.two_factor_setup_start(user=user)
    services.two_factor_setup_confirm(user=user, token=totp(device.bin_key))


def test_a_superuser_outside_any_organization_logs_in_with_the_password_again(client, db, caplog):
    root = get_user_model().objects.create_superuser("root", "root@example.org", PASSWORD)
    _set_up(root)
    client.login(username="root", password=PASSWORD)
    assert client.get("/admin/").url.startswith("/accounts/two-factor/verify/")  # the phone is lost here

    with caplog.at_level(logging.WARNING, logger="diagnosis.services.staff"):
        out, _ = call("two_factor_reset", "root", reason="lost phone, identity checked in person")

    assert "Two-factor authentication of root is reset" in out
    assert not Authenticator.objects.filter(user=root).exists() and not RecoveryCodes.objects.filter(user=root).exists()
    assert "Two-factor authentication of root reset on the server: lost phone, identity checked in person" in caplog.text
    fresh = client.__class__()
    fresh.login(username="root", password=PASSWORD)
    assert fresh.get("/admin/").status_code == 200


def test_an_only_administrators_reset_is_in_the_organizations_record(organization):
    boss = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    _set_up(boss)

    call("two_factor_reset", "boss", reason="lost phone")

    assert selectors.two_factor_device(user=boss) is None
    change = StaffChange.objects.get(member=boss)
    assert (change.action, change.by, change.detail) == (StaffChange.Action.TWO_FACTOR_RESET, None, "on the server: lost phone")


def test_refusals_say_why_and_change_nothing(organization):
    boss = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="boss").user
    _set_up(boss)

    with pytest.raises(CommandError, match="No user 'nobody'"):
        call("two_factor_reset", "nobody", reason="lost phone")
    with pytest.raises(CommandError, match="Say why"):
        call("two_factor_reset", "boss", reason="  ")
    assert selectors.two_factor_device(user=boss) is not None and not StaffChange.objects.exists()


def test_a_user_without_an_authenticator_is_told_so_and_nothing_is_recorded(organization):
    MembershipFactory(organization=organization, user__username="nurse")

    out, _ = call("two_factor_reset", "nurse", reason="lost phone")

    assert "nurse has no authenticator: nothing to reset." in out and not StaffChange.objects.exists()
