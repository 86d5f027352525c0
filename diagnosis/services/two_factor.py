"""Two-factor authentication: a code from an authenticator app (TOTP, RFC 6238) after the password.

A member sets it up themselves; an organization may require it of everyone. A lost phone is an
administrator's reset on the Members page, which is recorded.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from .. import selectors
from ..models import Membership

DEVICE_NAME = "authenticator app"
WRONG_CODE = "That code is wrong or has expired. Enter the 6-digit code your authenticator app shows now."


def _clean(token: str) -> str:
    # Apps show "123 456"; people type what they see.
    return "".join(str(token).split())


def _verify(device: TOTPDevice, token: str) -> None:
    # Never inside a transaction that the refusal rolls back: a wrong code's throttling must be saved.
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        raise ValidationError("Too many wrong codes. Wait a minute, then enter the code your app shows now.",
                              code="throttled")
    if not device.verify_token(_clean(token)):
        raise ValidationError(WRONG_CODE, code="wrong_code")


@transaction.atomic
def two_factor_setup_start(*, user: AbstractBaseUser) -> TOTPDevice:
    """A new secret for the user's authenticator app, unconfirmed until a code from it arrives; any
    earlier unconfirmed one is dropped. A confirmed authenticator keeps working meanwhile."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def two_factor_setup_confirm(*, user: AbstractBaseUser, token: str) -> TOTPDevice:
    """Confirm the new authenticator with a code it shows; it replaces any earlier one."""
    device = selectors.two_factor_setup_pending(user=user)
    if device is None:
        raise ValidationError("Start the setup again: no new authenticator is waiting to be confirmed.")
    _verify(device, token)
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=True).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    return device


def two_factor_check(*, user: AbstractBaseUser, token: str) -> TOTPDevice:
    """The user's authenticator if the code is right. A code works once, and wrong codes make the next
    try wait longer (django-otp's throttling), so six digits cannot be guessed."""
    device = selectors.two_factor_device(user=user)
    if device is None:
        raise ValidationError("You have no authenticator set up.")
    _verify(device, token)
    return device


def two_factor_disable(*, user: AbstractBaseUser, token: str) -> None:
    """Turn it off, with a current code as proof; not where the organization requires it."""
    membership = Membership.objects.select_related("organization").filter(user=user).first()
    if membership is not None and membership.organization.require_two_factor:
        raise ValidationError(f"{membership.organization.name} requires two-factor authentication of every member.")
    two_factor_check(user=user, token=token)  # outside a transaction, so that a wrong code's throttling stays
    TOTPDevice.objects.filter(user=user).delete()
