"""Members provisioned by the hospital's directory over SCIM 2.0 (RFC 7643/7644): Entra ID, Okta or another identity
manager adds a person when IT gives them kidneyweb, changes their names, email and role, and closes the account the
moment they leave, rather than at their next sign-on (as the groups do) or whenever an administrator notices.

The directory speaks for the whole organization with one token (ScimToken), which an administrator issues on the
Members page. Each change is recorded as a change to the member (StaffChange) made "by the hospital's directory
(SCIM)". Members it adds have no kidneyweb password: they log in through the hospital's sign-on. A member it removes
is deactivated, never deleted (their reviews and uploads keep their name), and is gone for the directory from then
on."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import Membership, Organization, ScimToken, StaffChange
from .organizations import check_role, check_username
from .staff import last_administrator_note, member_change_record, member_create, policy_change_record

logger = logging.getLogger(__name__)
Action = StaffChange.Action
BY = StaffChange.BY_DIRECTORY


class ScimConflict(Exception):
    """The change would give a username that another account holds (RFC 7644 ``uniqueness``)."""


@dataclass(frozen=True)
class ScimUser:
    """What the directory says of a person; ``None`` (or, for the role, no value) leaves a kept value as it is."""

    user_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    external_id: str | None = None
    active: bool | None = None
    role: str | None = None


def scim_token_issue(*, organization: Organization, by: AbstractBaseUser) -> str:
    """A new token for the directory, replacing any earlier one (which stops working at once). Returned once."""
    key = secrets.token_urlsafe(32)
    with transaction.atomic():
        replaced = ScimToken.objects.filter(organization=organization).delete()[0] > 0
        ScimToken.objects.create(organization=organization, digest=ScimToken.digest_of(key),
                                 prefix=key[:ScimToken.PREFIX_LENGTH], created_by=by)
        policy_change_record(organization=organization, by=by, detail="SCIM token issued for the hospital's directory"
                             + (", replacing the previous one" if replaced else ""))
    return key


def scim_token_revoke(*, organization: Organization, by: AbstractBaseUser) -> bool:
    with transaction.atomic():
        revoked = ScimToken.objects.filter(organization=organization).delete()[0] > 0
        if revoked:
            policy_change_record(organization=organization, by=by, detail="SCIM token revoked: the hospital's "
                                                                          "directory no longer provisions members")
    return revoked


def _record(membership: Membership, action: str, detail: str = "") -> None:
    member_change_record(organization=membership.organization, member=membership.user, by=None, action=action,
                         detail=f"{BY}: {detail}" if detail else BY)


def _username_free(username: str, *, but: AbstractBaseUser | None = None) -> None:
    User = get_user_model()
    taken = User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username})
    if but is not None:
        taken = taken.exclude(pk=but.pk)
    if taken.exists():
        # Never say whose it is: it may be another hospital's member.
        raise ScimConflict(f"The userName {username!r} is taken in kidneyweb.")


@transaction.atomic
def scim_user_create(*, organization: Organization, person: ScimUser) -> Membership:
    """Add the person the directory names, as a member who logs in through the hospital's sign-on."""
    username = (person.user_name or "").strip()
    if not username:
        raise ValidationError("userName is required.")
    role = person.role or Membership.Role.CLINICIAN
    check_role(role)
    Organization.objects.select_for_update().get(pk=organization.pk)
    _username_free(username)
    user, _ = member_create(organization=organization, username=username, by=None, role=role,
                            first_name=person.given_name or "", last_name=person.family_name or "",
                            email=person.email or "")
    user.set_unusable_password()  # the hospital's sign-on is the way in
    user.save(update_fields=["password"])
    Membership.objects.filter(user=user).update(password_change_required=False, by_directory=True,
                                                scim_external_id=(person.external_id or "")[:255])
    StaffChange.objects.filter(member=user, action=Action.ADDED).update(
        detail=f"{Membership.Role(role).label}, {BY}"[:200])
    membership = Membership.objects.select_related("user", "organization").get(user=user)
    logger.info("SCIM: %s added to %s as %s", username, organization.slug, role)
    if person.active is False:
        _deactivate(membership)
    return membership


@transaction.atomic
def scim_user_update(*, membership: Membership, person: ScimUser) -> Membership:
    """Apply what the directory says now of a member it provisions (a PATCH's or a PUT's values)."""
    Organization.objects.select_for_update().get(pk=membership.organization_id)
    membership = Membership.objects.select_related("user", "organization").get(pk=membership.pk)
    user = membership.user
    if not membership.by_directory:  # one an administrator added, which the directory now manages
        membership.by_directory = True
        membership.save(update_fields=["by_directory"])
    if person.user_name is not None and person.user_name.strip() != user.get_username():
        renamed = person.user_name.strip()
        check_username(renamed)
        _username_free(renamed, but=user)
        old = user.get_username()
        setattr(user, get_user_model().USERNAME_FIELD, renamed)
        user.save(update_fields=[get_user_model().USERNAME_FIELD])
        _record(membership, Action.RENAMED, f"{old} is now {renamed}")
    details = {name: value.strip() for name, value in (("first_name", person.given_name),
                                                       ("last_name", person.family_name), ("email", person.email))
               if value is not None}
    if details:
        for name, value in details.items():
            setattr(user, name, value if name == "email" else value[:150])
        user.save(update_fields=list(details))
    if person.external_id is not None and person.external_id != membership.scim_external_id:
        membership.scim_external_id = person.external_id[:255]
        membership.save(update_fields=["scim_external_id"])
    if person.active is True and not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
        _record(membership, Action.REACTIVATED)
    if person.role is not None and person.role != membership.role:
        check_role(person.role)
        last = last_administrator_note(membership=membership, by="the hospital's directory says")
        membership.role = person.role
        membership.save(update_fields=["role"])
        _record(membership, Action.ROLE_CHANGED, f"now {Membership.Role(person.role).label}{last}")
    if person.active is False and user.is_active:
        _deactivate(membership)
    return membership


def _deactivate(membership: Membership, why: str = "") -> None:
    user = membership.user
    last = last_administrator_note(membership=membership, by="the hospital's directory says")
    user.is_active = False  # their sessions and API token stop working at their next request
    user.save(update_fields=["is_active"])
    _record(membership, Action.DEACTIVATED, why + last if why else last.removeprefix("; "))
    logger.info("SCIM: %s deactivated in %s", user.get_username(), membership.organization.slug)


@transaction.atomic
def scim_user_remove(*, membership: Membership) -> None:
    """The directory deleted the person: the account is closed, kept for the record, and gone for the directory."""
    Organization.objects.select_for_update().get(pk=membership.organization_id)
    membership = Membership.objects.select_related("user", "organization").get(pk=membership.pk)
    if membership.user.is_active:
        _deactivate(membership, "removed from the directory")
    membership.scim_removed_at = timezone.now()
    membership.save(update_fields=["scim_removed_at"])


__all__ = ["ScimConflict", "ScimUser", "scim_token_issue", "scim_token_revoke", "scim_user_create",
           "scim_user_remove", "scim_user_update"]
