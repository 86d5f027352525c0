"""Two-factor authentication: a code from an authenticator app (TOTP, RFC 6238) after the password.

A member sets it up themselves; an organization may require it of everyone. A lost phone is an
administrator's reset on the Members page, which is recorded; or, at any hour, one of the recovery
codes shown when the app was set up.
"""

from __future__ import annotations

import logging
import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from .. import selectors
from ..models import Authenticator, Membership, RecoveryCode, RecoveryCodes

logger = logging.getLogger(__name__)

DEVICE_NAME = "authenticator app"
RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: a code is copied by hand from paper. 12 characters of 31 are 59 bits.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 12
WRONG_CODE = "That code is wrong or has expired. Enter the 6-digit code your authenticator app shows now."


def _clean(token: str) -> str:
    # Apps show "123 456"; people type what they see.
    return "".join(str(token).split())


def _verify(device: Authenticator, token: str) -> None:
    # Never inside a transaction that the refusal rolls back: a wrong code's throttling must be saved.
    if not device.readable:
        raise ValidationError(
            "Your authenticator app cannot be checked: its secret does not open with this server's keys. Use a "
            "recovery code, or ask an administrator of your organization to reset two-factor authentication.",
            code="unreadable")
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        raise ValidationError("Too many wrong codes. Wait a minute, then enter the code your app shows now.",
                              code="throttled")
    if not device.verify_token(_clean(token)):
        raise ValidationError(WRONG_CODE, code="wrong_code")


@transaction.atomic
def two_factor_setup_start(*, user: AbstractBaseUser) -> Authenticator:
    """A new secret for the user's authenticator app, unconfirmed until a code from it arrives; any
    earlier unconfirmed one is dropped. A confirmed authenticator keeps working meanwhile."""
    Authenticator.objects.filter(user=user, confirmed=False).delete()
    return Authenticator.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def two_factor_setup_confirm(*, user: AbstractBaseUser, token: str) -> tuple[Authenticator, tuple[str, ...]]:
    """Confirm the new authenticator with a code it shows; it replaces any earlier one. Returns it
    with a new set of recovery codes, which replaces any earlier set and is shown only now."""
    device = selectors.two_factor_setup_pending(user=user)
    if device is None:
        raise ValidationError("Start the setup again: no new authenticator is waiting to be confirmed.")
    _verify(device, token)
    with transaction.atomic():
        Authenticator.objects.filter(user=user, confirmed=True).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _recovery_codes_replace(user=user)
    return device, codes


def _recovery_codes_replace(*, user: AbstractBaseUser) -> tuple[str, ...]:
    RecoveryCodes.objects.filter(user=user).delete()
    device = RecoveryCodes.objects.create(user=user, name="recovery codes", salt=secrets.token_hex(16))
    codes = tuple("".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
                  for _ in range(RECOVERY_CODE_COUNT))
    RecoveryCode.objects.bulk_create(RecoveryCode(device=device, digest=device.digest(code)) for code in codes)
    return tuple("-".join(code[i:i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4)) for code in codes)


def recovery_codes_renew(*, user: AbstractBaseUser, token: str) -> tuple[str, ...]:
    """A new set of recovery codes, with a current code from the app as proof; the earlier set stops working."""
    two_factor_check(user=user, token=token)  # outside a transaction, so that a wrong code's throttling stays
    with transaction.atomic():
        return _recovery_codes_replace(user=user)


def two_factor_recover(*, user: AbstractBaseUser, code: str) -> RecoveryCodes:
    """Finish a login with a recovery code instead of the app's code. Each works once; wrong ones make
    the next try wait longer, as wrong app codes do."""
    device = RecoveryCodes.objects.filter(user=user).first()
    if device is None or selectors.two_factor_device(user=user) is None:
        who = ("An administrator of your organization" if selectors.membership_of(user) is not None
               else "The server's operator")
        raise ValidationError(f"You have no recovery codes. {who} can reset two-factor authentication for you.",
                              code="no_codes")
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        raise ValidationError("Too many wrong codes. Wait a minute, then try again.", code="throttled")
    if not device.verify_token(code):
        raise ValidationError("That recovery code is wrong or has been used.", code="wrong_code")
    # A used code may mean a lost phone, or someone else holding the paper: worth a line in the log.
    logger.warning("%s finished a login with a recovery code (%d left)", user.get_username(),
                   selectors.recovery_codes_left(user=user) or 0)
    return device


def two_factor_check(*, user: AbstractBaseUser, token: str) -> Authenticator:
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
    with transaction.atomic():
        Authenticator.objects.filter(user=user).delete()
        RecoveryCodes.objects.filter(user=user).delete()
