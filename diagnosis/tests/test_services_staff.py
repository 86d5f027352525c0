"""Organization administrators manage members: every change is recorded, an organization keeps an
administrator who can log in, and a new or reset password is temporary."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client

from diagnosis import selectors, services
from diagnosis.models import ApiToken, LoginFailure, Membership, StaffChange

from .factories import PASSWORD, MembershipFactory, UserFactory

Action = StaffChange.Action


def _actions(organization):
    return [(c.member.get_username(), c.by.get_username(), c.action) for c in selectors.staff_changes(organization=organization)]


def test_a_new_member_logs_in_with_a_temporary_password_that_they_must_replace(organization, boss):
    user, password = services.member_create(organization=organization, username="dr.lee", first_name="Ada",
                                            last_name="Lee", role=Membership.Role.CLINICIAN, by=boss)

    assert Client().login(username="dr.lee", password=password)
    assert user.membership.organization == organization and user.membership.password_change_required
    assert user.get_full_name() == "Ada Lee"
    assert password not in user.password  # stored hashed
    assert _actions(organization) == [("dr.lee", "boss", Action.ADDED)]


def test_two_temporary_passwords_differ(organization, boss):
    first = services.member_create(organization=organization, username="a1", by=boss)[1]
    second = services.member_create(organization=organization, username="a2", by=boss)[1]

    assert first != second and len(first) >= 14


@pytest.mark.parametrize("username, message", [
    ("", "Choose a username."),
    ("has space", "Enter a valid username"),
    ("NURSE", "The username 'NURSE' is taken"),
])
def test_a_bad_or_taken_username_is_refused_and_nothing_is_created(organization, boss, nurse, username, message):
    users = get_user_model().objects.count()

    with pytest.raises(ValidationError) as refused:
        services.member_create(organization=organization, username=username, by=boss)

    assert message in " ".join(refused.value.message_dict["username"])
    assert get_user_model().objects.count() == users and not StaffChange.objects.exists()


def test_a_username_of_another_hospital_is_refused_without_naming_that_hospital(organization, other_organization, boss):
    MembershipFactory(organization=other_organization, user__username="elsewhere")

    with pytest.raises(ValidationError) as refused:
        services.member_create(organization=organization, username="elsewhere", by=boss)

    assert other_organization.name not in str(refused.value)


def test_a_deactivated_member_can_no_longer_log_in_nor_use_the_api(organization, boss, nurse):
    token = services.api_token_rotate(user=nurse)
    session = Client()
    session.force_login(nurse)

    services.member_deactivate(organization=organization, member=nurse, by=boss, reason="left the ward")

    assert not Client().login(username="nurse", password=PASSWORD)
    assert session.get("/patients/").status_code == 302  # the open session ends too
    assert Client().get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 401
    assert selectors.staff_changes(organization=organization).get().detail == "left the ward"

    services.member_reactivate(organization=organization, member=nurse, by=boss)
    assert Client().login(username="nurse", password=PASSWORD)
    assert _actions(organization)[0] == ("nurse", "boss", Action.REACTIVATED)


def test_administrators_cannot_deactivate_or_demote_themselves(organization, boss):
    MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="deputy")

    for change in (lambda: services.member_deactivate(organization=organization, member=boss, by=boss),
                   lambda: services.member_role_set(organization=organization, member=boss, by=boss,
                                                    role=Membership.Role.CLINICIAN)):
        with pytest.raises(ValidationError, match="You cannot .* yourself"):
            change()

    boss.refresh_from_db()
    assert boss.is_active and boss.membership.role == Membership.Role.ADMIN
    assert not StaffChange.objects.exists()


def test_the_last_active_administrator_is_kept(organization, boss):
    """A deactivated administrator does not count: nobody could log in to manage the organization."""
    deputy = MembershipFactory(organization=organization, role=Membership.Role.ADMIN, user__username="deputy").user
    services.member_deactivate(organization=organization, member=deputy, by=boss)
    services.member_reactivate(organization=organization, member=deputy, by=boss)
    services.member_deactivate(organization=organization, member=boss, by=deputy)

    # The site's superuser (Django admin) acts for the organization when no administrator is left to.
    root = UserFactory(username="root", is_superuser=True)
    with pytest.raises(ValidationError, match="last active administrator"):
        services.member_deactivate(organization=organization, member=deputy, by=root)
    with pytest.raises(ValidationError, match="last active administrator"):
        services.member_role_set(organization=organization, member=deputy, by=root, role=Membership.Role.CLINICIAN)

    deputy.refresh_from_db()
    assert deputy.is_active and deputy.membership.role == Membership.Role.ADMIN


def test_a_role_change_is_recorded_with_the_new_role(organization, boss, nurse):
    services.member_role_set(organization=organization, member=nurse, by=boss, role=Membership.Role.ADMIN)
    services.member_role_set(organization=organization, member=nurse, by=boss, role=Membership.Role.ADMIN)  # no change

    assert selectors.is_organization_admin(get_user_model().objects.get(pk=nurse.pk))
    change = selectors.staff_changes(organization=organization).get()
    assert (change.action, change.detail) == (Action.ROLE_CHANGED, "now Administrator")


def test_a_temporary_password_replaces_the_old_one_ends_sessions_and_lifts_a_lock(organization, boss, nurse, settings):
    settings.KIDNEYWEB_LOGIN_MAX_FAILURES = 2
    session = Client()
    session.force_login(nurse)
    for _ in range(2):
        assert not Client().login(username="nurse", password="guess")
    assert services.login_wait_seconds(username="nurse")

    password = services.member_password_reset(organization=organization, member=nurse, by=boss)

    assert session.get("/patients/").status_code == 302
    assert not Client().login(username="nurse", password=PASSWORD)
    assert Client().login(username="nurse", password=password)
    assert Membership.objects.get(user=nurse).password_change_required
    assert _actions(organization) == [("nurse", "boss", Action.PASSWORD_RESET)]


def test_lifting_a_login_lock_lets_the_member_try_again(organization, boss, nurse, settings):
    settings.KIDNEYWEB_LOGIN_MAX_FAILURES = 2
    for _ in range(2):
        Client().login(username="Nurse", password="guess")  # counted case-insensitively
    assert selectors.member_login_locked(selectors.organization_member_get(organization=organization, user_id=nurse.pk))

    services.member_unlock(organization=organization, member=nurse, by=boss)
    services.member_unlock(organization=organization, member=nurse, by=boss)  # nothing left to lift: not recorded

    assert not LoginFailure.objects.exists()
    assert Client().login(username="nurse", password=PASSWORD)
    assert _actions(organization) == [("nurse", "boss", Action.UNLOCKED)]


def test_an_issued_api_token_replaces_the_old_one_and_a_revoked_one_stops_working(organization, boss, nurse):
    old = services.member_api_token_issue(organization=organization, member=nurse, by=boss)
    new = services.member_api_token_issue(organization=organization, member=nurse, by=boss)

    api = Client()
    assert api.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {old}").status_code == 401
    assert api.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {new}").status_code == 200
    assert selectors.organization_member_get(organization=organization, user_id=nurse.pk).has_api_token

    services.member_api_token_revoke(organization=organization, member=nurse, by=boss)

    assert api.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Token {new}").status_code == 401
    assert [action for *_, action in _actions(organization)] == [Action.TOKEN_REVOKED, Action.TOKEN_ISSUED, Action.TOKEN_ISSUED]
    assert selectors.staff_changes(organization=organization)[1].detail == "replacing the previous token"


def test_no_token_is_issued_to_a_deactivated_member(organization, boss, nurse):
    services.member_deactivate(organization=organization, member=nurse, by=boss)

    with pytest.raises(ValidationError, match="Reactivate this member"):
        services.member_api_token_issue(organization=organization, member=nurse, by=boss)
    assert not ApiToken.objects.exists()


def test_members_of_another_organization_are_refused(organization, other_organization, boss, other_clinician):
    with pytest.raises(ValidationError, match="not a member of your organization"):
        services.member_deactivate(organization=organization, member=other_clinician, by=boss)

    assert get_user_model().objects.get(pk=other_clinician.pk).is_active
    assert selectors.organization_member_get(organization=organization, user_id=other_clinician.pk) is None


def test_choosing_ones_own_password_ends_the_demand(organization, boss, nurse):
    services.member_password_reset(organization=organization, member=nurse, by=boss)

    services.member_password_changed(user=nurse)

    assert not Membership.objects.get(user=nurse).password_change_required


def test_an_update_that_is_refused_in_part_changes_nothing(organization, boss, nurse):
    # The role change comes first and would pass alone; the deactivation is refused and takes it back.
    with pytest.raises(ValidationError, match="You cannot deactivate yourself"):
        services.member_update(organization=organization, member=nurse, by=nurse, role=Membership.Role.ADMIN,
                               is_active=False)
    assert Membership.objects.get(user=nurse).role == Membership.Role.CLINICIAN
    assert not StaffChange.objects.exists()

    services.member_update(organization=organization, member=nurse, by=boss, role=Membership.Role.ADMIN,
                           is_active=False, reason="moved to another hospital")
    nurse.refresh_from_db()
    assert not nurse.is_active and Membership.objects.get(user=nurse).role == Membership.Role.ADMIN
