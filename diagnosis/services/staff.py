"""Organization administrators manage their own organization's members: add them, set their role,
deactivate and reactivate them, give them a temporary password, lift a login lock, issue or revoke an
API token. Every change is recorded (StaffChange).

An organization must keep an administrator who can log in, so nobody removes the last one, and nobody
demotes or deactivates themselves (another administrator does, knowingly).
"""

from __future__ import annotations

import datetime
import logging
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..models import ApiToken, Authenticator, Membership, Organization, RecoveryCodes, StaffChange
from .logins import login_failures_clear
from .organizations import api_token_revoke, api_token_rotate, check_role, check_username

Action = StaffChange.Action
logger = logging.getLogger(__name__)


def temporary_password() -> str:
    # Read out or handed over on paper once, then replaced at first login: easy to type, 72 random bits.
    words = [secrets.token_hex(3) for _ in range(3)]
    return "-".join(words)


def _locked_membership(*, organization: Organization, member: AbstractBaseUser) -> Membership:
    # Serialise changes per organization: two administrators demoting each other at once must not both win.
    Organization.objects.select_for_update().get(pk=organization.pk)
    membership = Membership.objects.select_related("user").filter(organization=organization, user=member).first()
    if membership is None:
        raise ValidationError("That user is not a member of your organization.")
    return membership


def member_change_record(*, organization: Organization, member: AbstractBaseUser, by: AbstractBaseUser | None,
                         action: str, detail: str = "") -> None:
    StaffChange.objects.create(organization=organization, member=member, by=by, action=action, detail=detail[:200])


def policy_change_record(*, organization: Organization, by: AbstractBaseUser, detail: str) -> None:
    """Record a change of an organization-wide setting (two-factor rule, notifications, archive) as the
    administrator's own change, beside the changes to members' accounts."""
    member_change_record(organization=organization, member=by, by=by, action=Action.POLICY_CHANGED, detail=detail)


def _other_active_admins(*, organization: Organization, member: AbstractBaseUser) -> int:
    return (Membership.objects.filter(organization=organization, role=Membership.Role.ADMIN, user__is_active=True)
            .exclude(user=member).count())


def last_administrator_note(*, membership: Membership, by: str) -> str:
    """Said when the hospital's groups or directory (``by``: "the hospital's groups say") take the administrator
    role from the organization's last active administrator, who is about to be demoted or closed.

    The hospital decides, as for anyone else: someone IT took out of the administrators (moved post, left) must not
    keep the right to add members and issue API tokens because nobody else holds it. So the change is made, and the
    organization is left without an administrator until the hospital names one or the server's operator adds one
    (``manage.py create_organization_admin``). That is logged as an error and shown in /metrics
    (``kidneyweb_organization_administrators`` 0), for the operator to act on."""
    if membership.role != Membership.Role.ADMIN or not membership.user.is_active:
        return ""
    if _other_active_admins(organization=membership.organization, member=membership.user):
        return ""
    logger.error("%s, the last active administrator of %s, is no longer one, as %s: the organization has no "
                 "administrator until the hospital names one or the operator adds one "
                 "(manage.py create_organization_admin)", membership.user.get_username(), membership.organization.slug,
                 by)
    return "; the organization has no active administrator left"


def _refuse_self(*, member: AbstractBaseUser, by: AbstractBaseUser, what: str) -> None:
    if member.pk == by.pk:
        raise ValidationError(f"You cannot {what} yourself; another administrator of your organization can.")


def member_create(
    *, organization: Organization, username: str, by: AbstractBaseUser | None, role: str = Membership.Role.CLINICIAN,
    first_name: str = "", last_name: str = "", email: str = "",
) -> tuple[AbstractBaseUser, str]:
    """Add a member with a temporary password, which they must replace at their first login.

    Returns the user and the temporary password, which is shown once and never stored in clear. ``by`` is
    None on the server's command line (an organization's first administrator). Where members log in through the
    hospital's sign-on only (KIDNEYWEB_PASSWORD_LOGIN off) they get no kidneyweb password, and the password is "".
    """
    check_role(role)
    username = username.strip()
    check_username(username)
    User = get_user_model()
    password = temporary_password()
    with transaction.atomic():
        Organization.objects.select_for_update().get(pk=organization.pk)
        # Case-insensitive, as logins are locked case-insensitively; and never say whose the name is:
        # it may belong to another hospital.
        if User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username}).exists():
            raise ValidationError({"username": [f"The username {username!r} is taken; choose another."]})
        user = User(**{User.USERNAME_FIELD: username}, first_name=first_name.strip()[:150],
                    last_name=last_name.strip()[:150], email=email.strip())
        passwords = settings.KIDNEYWEB_PASSWORD_LOGIN
        if passwords:
            user.set_password(password)
        else:
            user.set_unusable_password()
            password = ""
        user.save()
        Membership.objects.create(user=user, organization=organization, role=role, password_change_required=passwords)
        member_change_record(organization=organization, member=user, by=by, action=Action.ADDED,
                             detail=Membership.Role(role).label)
    return user, password


@transaction.atomic
def member_role_set(*, organization: Organization, member: AbstractBaseUser, role: str, by: AbstractBaseUser) -> Membership:
    check_role(role)
    membership = _locked_membership(organization=organization, member=member)
    if membership.role == role:
        return membership
    if membership.by_groups:
        raise ValidationError("Their role follows the hospital's groups at each sign-on: change their groups in the "
                              "hospital's directory.")
    if membership.role == Membership.Role.ADMIN:
        _refuse_self(member=member, by=by, what="take the administrator role from")
        if membership.user.is_active and not _other_active_admins(organization=organization, member=member):
            raise ValidationError("This is your organization's last active administrator.")
    membership.role = role
    membership.save(update_fields=["role"])
    member_change_record(organization=organization, member=member, by=by, action=Action.ROLE_CHANGED,
                         detail=f"now {Membership.Role(role).label}")
    return membership


@transaction.atomic
def member_deactivate(*, organization: Organization, member: AbstractBaseUser, by: AbstractBaseUser,
                      reason: str = "") -> None:
    """The member can no longer log in or use the API; their sessions end at their next request. Their
    reviews, uploads and the access log keep their name."""
    membership = _locked_membership(organization=organization, member=member)
    _refuse_self(member=member, by=by, what="deactivate")
    user = membership.user
    if not user.is_active:
        return
    if membership.role == Membership.Role.ADMIN and not _other_active_admins(organization=organization, member=user):
        raise ValidationError("This is your organization's last active administrator.")
    user.is_active = False
    user.save(update_fields=["is_active"])
    member_change_record(organization=organization, member=user, by=by, action=Action.DEACTIVATED,
                         detail=reason.strip())


@transaction.atomic
def member_reactivate(*, organization: Organization, member: AbstractBaseUser, by: AbstractBaseUser) -> None:
    membership = _locked_membership(organization=organization, member=member)
    user = membership.user
    if user.is_active:
        return
    user.is_active = True
    user.save(update_fields=["is_active"])
    member_change_record(organization=organization, member=user, by=by, action=Action.REACTIVATED)


@transaction.atomic
def member_update(*, organization: Organization, member: AbstractBaseUser, by: AbstractBaseUser,
                  role: str | None = None, is_active: bool | None = None, reason: str = "") -> Membership:
    """Change the role and/or the active state at once (the API's PATCH): all of it or, refused, none of it.

    A reactivation comes before a role change and a deactivation after it, so that the guards (the last
    active administrator) judge the member's final state."""
    if is_active is True:
        member_reactivate(organization=organization, member=member, by=by)
    if role is not None:
        member_role_set(organization=organization, member=member, role=role, by=by)
    if is_active is False:
        member_deactivate(organization=organization, member=member, by=by, reason=reason)
    return _locked_membership(organization=organization, member=member)


@transaction.atomic
def member_password_reset(*, organization: Organization, member: AbstractBaseUser, by: AbstractBaseUser) -> str:
    """Give the member a temporary password, to be replaced at their next login. Their sessions end (the
    session hash changes with the password) and a login lock is lifted. Returns the password, shown once."""
    membership = _locked_membership(organization=organization, member=member)
    _refuse_self(member=member, by=by, what="set a temporary password for")
    if membership.by_groups:
        raise ValidationError("They log in with their hospital account only (managed by the hospital's groups): a "
                              "kidneyweb password would go around the hospital's sign-on.")
    if not settings.KIDNEYWEB_PASSWORD_LOGIN:
        raise ValidationError("kidneyweb's own passwords are turned off here: they log in with their hospital "
                              "account, whose password the hospital resets.")
    password = temporary_password()
    user = membership.user
    user.set_password(password)
    user.save(update_fields=["password"])
    membership.password_change_required = True
    membership.save(update_fields=["password_change_required"])
    login_failures_clear(username=user.get_username())
    member_change_record(organization=organization, member=user, by=by, action=Action.PASSWORD_RESET)
    return password


@transaction.atomic
def member_unlock(*, organization: Organization, member: AbstractBaseUser, by: AbstractBaseUser) -> None:
    """Lift a login lock early, for a member who mistyped rather than someone guessing."""
    membership = _locked_membership(organization=organization, member=member)
    if login_failures_clear(username=membership.user.get_username()):
        member_change_record(organization=organization, member=membership.user, by=by, action=Action.UNLOCKED)


@transaction.atomic
def member_api_token_issue(*, organization: Organization, member: AbstractBaseUser, by: AbstractBaseUser) -> str:
    """A new API token for the member, replacing any old one (which stops working). Returned once."""
    membership = _locked_membership(organization=organization, member=member)
    if not membership.user.is_active:
        raise ValidationError("Reactivate this member before issuing a token: a deactivated member's token is refused.")
    replaced = selectors.api_token_of(user=membership.user) is not None
    key = api_token_rotate(user=membership.user)
    member_change_record(organization=organization, member=membership.user, by=by, action=Action.TOKEN_ISSUED,
                         detail="replacing the previous token" if replaced else "")
    return key


@transaction.atomic
def member_api_token_revoke(*, organization: Organization, member: AbstractBaseUser, by: AbstractBaseUser) -> None:
    membership = _locked_membership(organization=organization, member=member)
    if api_token_revoke(user=membership.user):
        member_change_record(organization=organization, member=membership.user, by=by, action=Action.TOKEN_REVOKED)


def member_password_changed(*, user: AbstractBaseUser) -> None:
    """The member chose their own password: the temporary one's demand is met."""
    Membership.objects.filter(user=user, password_change_required=True).update(password_change_required=False)


@transaction.atomic
def member_two_factor_reset(*, organization: Organization, member: AbstractBaseUser, by: AbstractBaseUser) -> None:
    """For a lost or replaced phone: the member sets up a new authenticator at their next login (at once,
    where the organization requires it)."""
    membership = _locked_membership(organization=organization, member=member)
    _refuse_self(member=member, by=by, what="reset two-factor authentication for")
    if _authenticator_remove(user=membership.user):
        member_change_record(organization=organization, member=membership.user, by=by,
                             action=Action.TWO_FACTOR_RESET)


def _authenticator_remove(*, user: AbstractBaseUser) -> bool:
    """Remove the user's authenticator and the recovery codes that belonged to its setup; False when there
    was no authenticator."""
    RecoveryCodes.objects.filter(user=user).delete()
    return Authenticator.objects.filter(user=user).delete()[0] > 0


@transaction.atomic
def two_factor_reset_on_server(*, user: AbstractBaseUser, reason: str) -> bool:
    """The server operator's reset of a lost phone, for whoever no administrator can reset: a site superuser
    outside any organization, or an organization's only administrator. Removes the authenticator and its
    recovery codes; the user sets up a new one at their next login. Recorded, with the reason, in the
    organization's record of staff changes where they have one, and logged. False when there was none."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise ValidationError("Say why, e.g. \"lost phone, identity checked in person by the IT service desk\".")
    if not _authenticator_remove(user=user):
        return False
    membership = selectors.membership_of(user)
    if membership is not None:
        member_change_record(organization=membership.organization, member=user, by=None,
                             action=Action.TWO_FACTOR_RESET, detail=f"on the server: {reason}")
    logger.warning("Two-factor authentication of %s reset on the server: %s", user.get_username(), reason)
    return True


MAX_API_TOKEN_DAYS = 3650


@transaction.atomic
def organization_api_token_days_set(*, organization: Organization, days: int | None, by: AbstractBaseUser) -> int:
    """Let API tokens work for ``days`` after they were issued (None: until replaced or revoked). Counts for the
    tokens issued already too: returns how many of the members' tokens are past it, and so stop working now."""
    if days is not None and not 1 <= days <= MAX_API_TOKEN_DAYS:
        raise ValidationError({"api_token_days": [
            f"Enter a number of days from 1 to {MAX_API_TOKEN_DAYS}, or nothing for tokens that do not expire."]})
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    expired = (ApiToken.objects.filter(user__membership__organization=organization,
                                       created__lte=timezone.now() - datetime.timedelta(days=days)).count()
               if days else 0)
    if organization.api_token_days == days:
        return expired
    organization.api_token_days = days
    organization.save(update_fields=["api_token_days"])
    policy_change_record(organization=organization, by=by,
                         detail=f"API tokens expire {days} days after they are issued" if days
                         else "API tokens do not expire")
    return expired


@transaction.atomic
def organization_two_factor_require(*, organization: Organization, required: bool, by: AbstractBaseUser) -> None:
    """Require (or stop requiring) two-factor authentication of every member. Members without an
    authenticator set one up at their next request; API tokens are not affected."""
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    if organization.require_two_factor == required:
        return
    organization.require_two_factor = required
    organization.save(update_fields=["require_two_factor"])
    policy_change_record(organization=organization, by=by, detail="two-factor authentication required" if required
                         else "two-factor authentication optional")
