"""Members managed by the hospital's groups: where KIDNEYWEB_OIDC_ORGANIZATION and its groups are set, a person the
ID token's groups name becomes a member at their first sign-on, their role follows the groups at each sign-on, and
leaving them closes the account; members an administrator added are left as they are. A real OpenID Connect
provider on localhost signs them on."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from diagnosis.models import Membership, StaffChange

from .factories import token_client
from .test_views_sso import _logged_in_as, _sign_on

CLINICIANS, ADMINS = "kidneyweb-clinicians", "kidneyweb-admins"


@pytest.fixture
def provider(identity_provider, organization, settings):
    settings.KIDNEYWEB_OIDC_ORGANIZATION = organization.slug
    settings.KIDNEYWEB_OIDC_CLINICIAN_GROUPS = [CLINICIANS]
    settings.KIDNEYWEB_OIDC_ADMIN_GROUPS = [ADMINS]
    identity_provider.user = "carol.jones"
    return identity_provider


def _changes(user) -> list[tuple[str, str]]:
    return [(change.action, change.detail) for change in StaffChange.objects.filter(member=user).order_by("at", "id")]


def test_a_person_in_the_clinicians_group_becomes_a_member_at_the_first_sign_on(client, provider, organization,
                                                                               boss):
    provider.groups = ["all-staff", CLINICIANS]

    _sign_on(client, provider)

    assert _logged_in_as(client) == "carol.jones" and client.get("/patients/").status_code == 200
    user = get_user_model().objects.get(username="carol.jones")
    assert (user.first_name, user.last_name, user.email) == ("Carol", "Jones", "carol.jones@hospital.example.org")
    assert not user.has_usable_password()  # the hospital's sign-on is the only way in
    membership = user.membership
    assert (membership.organization, membership.role, membership.by_groups, membership.password_change_required) == (
        organization, Membership.Role.CLINICIAN, True, False)
    assert _changes(user) == [("added", f"Clinician, by the hospital sign-on: group {CLINICIANS}")]
    client.logout()
    # Administrators see who the groups manage, on the member's page and in the API.
    listed = {member["username"]: member for member in token_client(boss).get("/api/v1/members/").json()["results"]}
    assert (listed["carol.jones"]["by_groups"], listed["boss"]["by_groups"]) == (True, False)
    client.force_login(boss)
    assert "managed by the hospital's groups" in client.get(f"/staff/{user.pk}/").content.decode()


def test_the_role_follows_the_groups_at_each_sign_on(client, provider):
    provider.groups = [CLINICIANS]
    _sign_on(client, provider)
    client.logout()

    provider.groups = [CLINICIANS, ADMINS]
    _sign_on(client, provider)
    user = get_user_model().objects.get(username="carol.jones")
    assert user.membership.role == Membership.Role.ADMIN and client.get("/staff/").status_code == 200
    client.logout()

    provider.groups = [CLINICIANS]
    _sign_on(client, provider)
    assert Membership.objects.get(user=user).role == Membership.Role.CLINICIAN
    assert client.get("/staff/").status_code == 403
    assert [action for action, _ in _changes(user)] == ["added", "role_changed", "role_changed"]
    assert _changes(user)[1][1] == f"by the hospital sign-on: now Administrator (group {ADMINS})"


def test_the_groups_demote_the_last_administrator_too_and_say_that_the_organization_has_none_left(
        client, provider, organization, caplog):
    provider.groups = [ADMINS]
    _sign_on(client, provider)
    client.logout()
    user = get_user_model().objects.get(username="carol.jones")

    provider.groups = [CLINICIANS]  # moved post: IT took her out of the administrators' group
    _sign_on(client, provider)

    assert _logged_in_as(client) == "carol.jones" and client.get("/staff/").status_code == 403
    assert Membership.objects.get(user=user).role == Membership.Role.CLINICIAN  # the directory decides
    assert _changes(user)[-1] == ("role_changed", f"by the hospital sign-on: now Clinician (group {CLINICIANS}); "
                                                  "the organization has no active administrator left")
    [error] = [record for record in caplog.records if record.levelname == "ERROR"]
    assert "last active administrator of " + organization.slug in error.getMessage()
    assert "manage.py create_organization_admin" in error.getMessage()
    client.logout()

    provider.groups = ["all-staff"]  # and then left
    _sign_on(client, provider)
    assert _changes(user)[-1] == ("deactivated", "by the hospital sign-on: no longer in a group that gives an "
                                                 "account")  # she was no administrator by then


def test_a_demotion_by_the_groups_says_nothing_more_while_another_administrator_is_active(
        client, provider, boss, caplog):
    provider.groups = [ADMINS]
    _sign_on(client, provider)
    client.logout()

    provider.groups = ["all-staff"]
    _sign_on(client, provider)

    user = get_user_model().objects.get(username="carol.jones")
    assert _changes(user)[-1] == ("deactivated", "by the hospital sign-on: no longer in a group that gives an account")
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_leaving_the_groups_closes_the_account_and_joining_again_opens_it(client, provider, organization, boss):
    provider.groups = [CLINICIANS]
    _sign_on(client, provider)
    client.logout()

    provider.groups = ["all-staff"]
    refused = _sign_on(client, provider)

    assert refused["Location"] == "/accounts/login/" and _logged_in_as(client) is None
    assert "no longer in a group that gives a kidneyweb account" in client.get("/accounts/login/").content.decode()
    user = get_user_model().objects.get(username="carol.jones")
    assert not user.is_active
    provider.groups = [CLINICIANS]
    _sign_on(client, provider)
    assert _logged_in_as(client) == "carol.jones"
    assert [action for action, _ in _changes(user)] == ["added", "deactivated", "reactivated"]
    client.logout()

    # An administrator closed it: being in the group does not open it again.
    from diagnosis import services

    services.member_deactivate(organization=organization, member=user, by=boss, reason="left the ward")
    _sign_on(client, provider)
    assert _logged_in_as(client) is None
    assert "is deactivated: ask your organization" in client.get("/accounts/login/").content.decode()


def test_nobody_in_the_groups_gets_an_account_and_members_an_administrator_added_are_left_alone(
        client, provider, clinician):
    provider.groups = ["all-staff"]
    _sign_on(client, provider)
    assert _logged_in_as(client) is None
    assert "in no group that gives one" in client.get("/accounts/login/").content.decode()
    assert not get_user_model().objects.filter(username="carol.jones").exists()

    provider.user, provider.groups = "alice", ["all-staff", ADMINS]  # added by an administrator as a clinician
    _sign_on(client, provider)
    assert _logged_in_as(client) == "alice"
    assert Membership.objects.get(user=clinician).role == Membership.Role.CLINICIAN
    assert not StaffChange.objects.filter(member=clinician).exists()


def test_an_administrator_cannot_set_the_role_or_a_password_of_a_member_the_groups_manage(
        client, provider, organization, boss):
    provider.groups = [CLINICIANS]
    _sign_on(client, provider)
    user = get_user_model().objects.get(username="carol.jones")
    client.force_login(boss)
    page = client.get(f"/staff/{user.pk}/").content.decode()
    assert "Change role" not in page and "Set a temporary password" not in page and "Deactivate" in page

    api = token_client(boss)
    role = api.patch(f"/api/v1/members/{user.pk}/", {"role": "admin"}, format="json")
    password = client.post(f"/staff/{user.pk}/password/", follow=True)

    assert role.status_code == 400 and "follows the hospital's groups" in str(role.json())
    assert "would go around the hospital&#x27;s sign-on" in password.content.decode()
    user.refresh_from_db()
    assert user.membership.role == Membership.Role.CLINICIAN and not user.has_usable_password()
