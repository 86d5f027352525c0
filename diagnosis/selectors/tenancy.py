"""Who the user is within their organization. Every selector that takes a user returns only that user's
organization's data: another organization's object is indistinguishable from one that does not exist."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from ..models import Membership, Organization

UserLike = AbstractBaseUser | AnonymousUser


def membership_of(user: UserLike) -> Membership | None:
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        return user.membership  # type: ignore[union-attr]
    except Membership.DoesNotExist:
        return None


def is_organization_admin(user: UserLike) -> bool:
    membership = membership_of(user)
    return membership is not None and membership.role == Membership.Role.ADMIN


def organization_of(user: UserLike) -> Organization | None:
    membership = membership_of(user)
    return membership.organization if membership else None


def _organization_id(user: UserLike) -> int | None:
    membership = membership_of(user)
    return membership.organization_id if membership else None
