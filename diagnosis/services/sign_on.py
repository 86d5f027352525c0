"""Who a sign-on logs in (``sso.SignedOn``): the active member its username names, as an administrator added them;
and, where the hospital manages access by groups (KIDNEYWEB_OIDC_ORGANIZATION and its groups set), a person the
groups name, added at their first sign-on, whose role then follows the groups and whose account closes when they
leave them. Each such change is recorded as a change to the member (StaffChange), by the sign-on itself."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from .. import selectors
from ..models import Membership, Organization, StaffChange
from ..sso import SignedOn
from .staff import last_administrator_note, member_change_record, member_create

logger = logging.getLogger(__name__)
Action = StaffChange.Action


class SignOnRefused(Exception):
    """The sign-on names nobody kidneyweb may log in; the message says why, for the login page."""


def _group_role(signed_on: SignedOn) -> tuple[str, str] | None:
    """The role the token's groups give, and the group that gives it (administrator first), or None."""
    groups = set(signed_on.groups)
    for role, allowed in ((Membership.Role.ADMIN, settings.KIDNEYWEB_OIDC_ADMIN_GROUPS),
                          (Membership.Role.CLINICIAN, settings.KIDNEYWEB_OIDC_CLINICIAN_GROUPS)):
        for group in allowed:
            if group in groups:
                return role, group
    return None


def _managing_organization() -> Organization | None:
    slug = settings.KIDNEYWEB_OIDC_ORGANIZATION
    if not slug or not (settings.KIDNEYWEB_OIDC_ADMIN_GROUPS or settings.KIDNEYWEB_OIDC_CLINICIAN_GROUPS):
        return None
    organization = Organization.objects.filter(slug=slug).first()
    if organization is None:
        logger.error("Sign-on: KIDNEYWEB_OIDC_ORGANIZATION names no organization (%r); no member is added by groups",
                     slug)
    return organization


def _record(membership: Membership, action: str, detail: str) -> None:
    member_change_record(organization=membership.organization, member=membership.user, by=membership.user,
                         action=action, detail=f"by the hospital sign-on: {detail}")


def sign_on_user(*, signed_on: SignedOn) -> AbstractBaseUser:
    """The account to log in for ``signed_on``; raises SignOnRefused with the reason."""
    organization = _managing_organization()
    if organization is None:
        user = selectors.user_for_sign_on(username=signed_on.username)
        if user is None:
            raise SignOnRefused(f"There is no kidneyweb account for {signed_on.username} (or it is deactivated): ask "
                                "your organization's administrator to add you.")
        return user
    granted = _group_role(signed_on)
    with transaction.atomic():
        user, refusal = _by_groups(organization, signed_on, granted)
    # Raised after the commit: closing the account of someone who left the groups must stay done.
    if refusal:
        raise SignOnRefused(refusal)
    return user


def _by_groups(organization: Organization, signed_on: SignedOn,
               granted: tuple[str, str] | None) -> tuple[AbstractBaseUser | None, str]:
    User = get_user_model()
    Organization.objects.select_for_update().get(pk=organization.pk)  # one first sign-on at a time
    found = list(User.objects.select_related("membership").filter(
        **{f"{User.USERNAME_FIELD}__iexact": signed_on.username})[:2])
    if len(found) > 1:
        return None, (f"Two kidneyweb accounts differ from {signed_on.username} only in case: ask your "
                      "organization's administrator.")
    if not found:
        if granted is None:
            return None, (f"There is no kidneyweb account for {signed_on.username}, and your hospital account "
                          "is in no group that gives one: ask your IT service.")
        try:
            return _add(organization, signed_on, *granted), ""
        except ValidationError as exc:
            return None, f"Your hospital account cannot be added to kidneyweb: {' '.join(exc.messages)}"
    user = found[0]
    membership = getattr(user, "membership", None)
    if membership is None or not membership.by_groups or membership.organization_id != organization.pk:
        # Added by an administrator: the groups do not change it.
        if not user.is_active:
            return None, _deactivated(user)
        return user, ""
    return _follow_groups(membership, granted)


def _add(organization: Organization, signed_on: SignedOn, role: str, group: str) -> AbstractBaseUser:
    user, _ = member_create(organization=organization, username=signed_on.username, by=None, role=role,
                            first_name=signed_on.first_name, last_name=signed_on.last_name, email=signed_on.email)
    # No kidneyweb password: the hospital's sign-on is the only way in.
    user.set_unusable_password()
    user.save(update_fields=["password"])
    Membership.objects.filter(user=user).update(by_groups=True, password_change_required=False)
    StaffChange.objects.filter(member=user, action=Action.ADDED).update(
        by=user, detail=f"{Membership.Role(role).label}, by the hospital sign-on: group {group}"[:200])
    logger.info("Sign-on: %s added to %s as %s (group %s)", user.get_username(), organization.slug, role, group)
    return user


def _deactivated(user: AbstractBaseUser) -> str:
    return f"The kidneyweb account {user.get_username()} is deactivated: ask your organization's administrator."


def _follow_groups(membership: Membership, granted: tuple[str, str] | None) -> tuple[AbstractBaseUser | None, str]:
    user = membership.user
    if granted is None:
        if user.is_active:
            last = last_administrator_note(membership=membership, by="the hospital's groups say")
            user.is_active = False
            user.save(update_fields=["is_active"])
            _record(membership, Action.DEACTIVATED, "no longer in a group that gives an account" + last)
            logger.info("Sign-on: %s deactivated, no longer in the hospital's kidneyweb groups", user.get_username())
        return None, (f"Your hospital account is no longer in a group that gives a kidneyweb account "
                      f"({user.get_username()} is closed): ask your IT service.")
    role, group = granted
    if not user.is_active:
        deactivated = StaffChange.objects.filter(member=user, action=Action.DEACTIVATED).order_by("-at", "-id").first()
        if deactivated is None or deactivated.by_id != user.pk:
            # An administrator closed it: being in the group again does not open it.
            return None, _deactivated(user)
        user.is_active = True
        user.save(update_fields=["is_active"])
        _record(membership, Action.REACTIVATED, f"in group {group} again")
    if membership.role != role:
        last = last_administrator_note(membership=membership, by="the hospital's groups say")
        membership.role = role
        membership.save(update_fields=["role"])
        _record(membership, Action.ROLE_CHANGED, f"now {Membership.Role(role).label} (group {group}){last}")
    return user, ""
