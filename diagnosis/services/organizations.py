"""Organizations, their members, API tokens, and the sealed credentials kept for them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Callable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.text import slugify

from ..models import ApiToken, Authenticator, Membership, Organization
from ..sealed import SealedTextField, Unreadable


def organization_get_or_create(*, name: str) -> tuple[Organization, bool]:
    name = name.strip()
    if not name:
        raise ValidationError({"name": ["The organization needs a name."]})
    limit = Organization._meta.get_field("name").max_length
    if len(name) > limit:
        raise ValidationError({"name": [f"The organization's name is {len(name)} characters long; the limit is {limit}."]})
    organization = Organization.objects.filter(name=name).first()
    if organization:
        return organization, False
    base = slugify(name)[:190] or "organization"
    slug, suffix = base, 2
    while Organization.objects.filter(slug=slug).exists():
        slug, suffix = f"{base}-{suffix}", suffix + 1
    return Organization.objects.create(name=name, slug=slug), True


def check_role(role: str) -> None:
    if role not in Membership.Role.values:
        raise ValidationError({"role": [f"Unknown role {role!r}; choose one of {', '.join(Membership.Role.values)}."]})


def check_username(username: str) -> None:
    """The checks of Django's own user forms: not empty, length and allowed characters."""
    if not username:
        raise ValidationError({"username": ["Choose a username."]})
    field = get_user_model()._meta.get_field(get_user_model().USERNAME_FIELD)
    try:
        field.run_validators(field.to_python(username))
    except ValidationError as exc:
        raise ValidationError({"username": [f"The username {username[:40]!r}: {message}" for message in exc.messages]}) from None


def member_get_or_create(
    *, organization: Organization, username: str, role: str = Membership.Role.CLINICIAN, password: str | None = None
) -> tuple[AbstractBaseUser, bool]:
    """Return the user, created if needed, as a member of the organization with the role.

    A user belongs to one organization; moving one silently would hand it another hospital's records,
    so a user of a different organization is refused.
    """
    check_role(role)
    check_username(username)
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username)
        if created:
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save()
        membership = Membership.objects.select_for_update().filter(user=user).first()
        if membership is None:
            Membership.objects.create(user=user, organization=organization, role=role)
        elif membership.organization_id != organization.pk:
            raise ValidationError(
                {"username": [f"User {username!r} already belongs to {membership.organization.name!r}."]}
            )
        elif membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
    return user, created


def api_token_rotate(*, user: AbstractBaseUser) -> str:
    """Replace the user's API token, so a leaked old one stops working. The new token is returned once:
    only its digest is kept."""
    # 160 random bits as 40 hex digits: the form of the tokens issued before digests, so integrations that
    # check a token's shape keep working.
    key = secrets.token_hex(20)
    with transaction.atomic():
        ApiToken.objects.filter(user=user).delete()
        ApiToken.objects.create(user=user, digest=ApiToken.digest_of(key), prefix=key[:ApiToken.PREFIX_LENGTH],
                                created=timezone.now())
    return key


def api_token_revoke(*, user: AbstractBaseUser) -> bool:
    """Whether the user had an API token, which now stops working."""
    return ApiToken.objects.filter(user=user).delete()[0] > 0


@dataclass(frozen=True)
class Resealed:
    """What ``credentials_reseal`` did: how many stored credentials it sealed anew, and, for each it could not open,
    whose it is and why."""

    resealed: int
    unreadable: list[str]


def _reseal_rows(model: type[models.Model], owner: Callable[[Any], str]) -> tuple[int, list[str]]:
    fields = [field.name for field in model._meta.get_fields() if isinstance(field, SealedTextField)]
    resealed, unreadable = 0, []
    for pk in model.objects.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            # Locked: a credential set meanwhile (Members page, Account page) is not overwritten with the old one.
            row = model.objects.select_for_update().filter(pk=pk).first()
            if row is None:
                continue
            readable = []
            for name in fields:
                value = getattr(row, name)
                if isinstance(value, Unreadable):
                    unreadable.append(f"{owner(row)}: {value.reason}")
                elif value:
                    readable.append(name)
            if readable:
                row.save(update_fields=readable)
                resealed += len(readable)
    return resealed, unreadable


def credentials_reseal() -> Resealed:
    """Seal every stored credential (archive passwords, notification secrets, authenticator apps' secrets) again
    with the current key, so that a key replaced in KIDNEYWEB_CREDENTIALS_KEY or a changed SECRET_KEY can be dropped
    from the settings. Those no key of this server opens are left as they are and named."""
    organizations = _reseal_rows(Organization, lambda organization: organization.name)
    authenticators = _reseal_rows(Authenticator, lambda device: f"the authenticator app of {device.user.get_username()}")
    return Resealed(resealed=organizations[0] + authenticators[0], unreadable=organizations[1] + authenticators[1])
