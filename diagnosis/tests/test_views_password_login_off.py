"""KIDNEYWEB_PASSWORD_LOGIN=false: members log in through the hospital's sign-on only (a real OpenID Connect provider
on localhost), so the hospital's password, multi-factor and leaver rules apply to every login. A kidneyweb password
opens nothing for them, on the login page and the Django admin's, and kidneyweb hands out none; site superusers keep
theirs, the server operator's way in while the provider is down."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from diagnosis.auth import PASSWORDS_OFF
from diagnosis.models import LoginFailure, Membership, StaffChange

from .factories import PASSWORD, UserFactory, token_client
from .test_views_sso import _logged_in_as, _sign_on

LOGIN = "/accounts/login/"


@pytest.fixture
def provider(identity_provider, settings):
    settings.KIDNEYWEB_PASSWORD_LOGIN = False
    return identity_provider


@pytest.fixture
def operator(db):
    return UserFactory(username="operator", is_superuser=True, is_staff=True)


def _refusal(page: str) -> bool:
    return "kidneyweb&#x27;s own passwords are turned off here" in page


def test_the_login_page_offers_the_sign_on_and_folds_away_the_operators_password_form(client, provider):
    page = client.get(LOGIN).content.decode()

    assert 'id="sign-on"' in page and "Or with a kidneyweb password" not in page
    emergency = page.split('<details id="emergency-login">')[1].split("</details>")[0]
    assert "Server operator's emergency login" in emergency and 'name="password"' in emergency
    assert "autofocus" not in page  # the folded field takes no focus: the sign-on is the way in


def test_a_members_right_password_opens_nothing_and_is_neither_checked_nor_counted(client, provider, clinician):
    refused = client.post(LOGIN, {"username": "alice", "password": PASSWORD})

    page = refused.content.decode()
    assert refused.status_code == 200 and _logged_in_as(client) is None
    assert _refusal(page) and "<details id=\"emergency-login\" open>" in page
    assert not LoginFailure.objects.filter(username="alice").exists()
    # The same words for a name nobody has: the answer tells no account apart.
    assert _refusal(client.post(LOGIN, {"username": "nobody", "password": "guess"}).content.decode())


def test_the_member_logs_in_through_the_hospitals_sign_on(client, provider, clinician):
    provider.user = "alice"

    _sign_on(client, provider)

    assert _logged_in_as(client) == "alice"


def test_a_site_superuser_still_logs_in_with_a_password_and_the_server_logs_it(client, provider, operator, caplog):
    wrong = client.post(LOGIN, {"username": "operator", "password": "guess"}).content.decode()
    assert _refusal(wrong)  # a mistyped emergency password reads as a member's refusal
    assert LoginFailure.objects.filter(username="operator").count() == 1  # and counts towards the lock

    with caplog.at_level(logging.WARNING, logger="diagnosis.auth"):
        client.post(LOGIN, {"username": "operator", "password": PASSWORD})

    assert _logged_in_as(client) == "operator"
    assert any("Emergency login: site superuser operator" in record.getMessage() for record in caplog.records)


def test_the_django_admins_login_refuses_a_staff_members_password_too(client, provider, clinician, operator):
    clinician.is_staff = True
    clinician.save()

    page = client.post("/admin/login/", {"username": "alice", "password": PASSWORD}).content.decode()
    assert _refusal(page) and _logged_in_as(client) is None

    client.post("/admin/login/", {"username": "operator", "password": PASSWORD})
    assert _logged_in_as(client) == "operator"


def test_a_signed_on_member_has_no_password_to_change(client, provider, clinician):
    client.force_login(clinician)

    account = client.get("/accounts/").content.decode()
    change = client.get("/accounts/password/", follow=True)

    assert "Change password" not in account and "its password is changed with the hospital" in account
    assert change.redirect_chain == [("/accounts/", 302)]
    assert "whose password the hospital changes" in change.content.decode()
    assert client.post("/accounts/password/", {"old_password": PASSWORD, "new_password1": "a-New-one-2026!",
                                               "new_password2": "a-New-one-2026!"}).status_code == 302
    clinician.refresh_from_db()
    assert clinician.check_password(PASSWORD)  # unchanged


def test_an_administrator_adds_a_member_without_a_password_to_hand_over(client, provider, boss):
    client.force_login(boss)

    added = client.post("/staff/new/", {"username": "carol.jones", "role": "clinician"}, follow=True)
    api_added = token_client(boss).post("/api/v1/members/", {"username": "dan", "role": "clinician"}, format="json")

    carol = get_user_model().objects.get(username="carol.jones")
    assert "they log in with their hospital account" in added.content.decode()
    listing = client.get("/staff/").content.decode()
    assert "Members log in with\n  their hospital account only" in listing and "temporary\n  password" not in listing
    assert added.redirect_chain[-1][0] == f"/staff/{carol.pk}/"
    assert api_added.status_code == 201 and api_added.json()["temporary_password"] is None
    for username in ("carol.jones", "dan"):
        user = get_user_model().objects.get(username=username)
        assert not user.has_usable_password() and not user.membership.password_change_required
    provider.user = "carol.jones"
    client.logout()
    _sign_on(client, provider)
    assert _logged_in_as(client) == "carol.jones"


def test_a_temporary_password_is_refused_and_not_offered(client, provider, boss, clinician):
    client.force_login(boss)

    page = client.get(f"/staff/{clinician.pk}/").content.decode()
    web = client.post(f"/staff/{clinician.pk}/password/", follow=True).content.decode()
    api = token_client(boss).post(f"/api/v1/members/{clinician.pk}/temporary-password/")

    assert "Set a temporary password" not in page
    assert "whose password the hospital resets" in web
    assert api.status_code == 400 and "passwords are turned off" in str(api.json())
    clinician.refresh_from_db()
    assert clinician.check_password(PASSWORD)
    assert not StaffChange.objects.filter(member=clinician, action=StaffChange.Action.PASSWORD_RESET).exists()


def test_the_operators_new_administrator_gets_no_password_either(db, provider, capsys):
    call_command("create_organization_admin", "Royal Infirmary", "dr.grey")

    out = capsys.readouterr().out
    assert "temporary password" not in out and "log in with their hospital account" in out
    membership = Membership.objects.get(user__username="dr.grey")
    assert membership.role == Membership.Role.ADMIN and not membership.user.has_usable_password()
