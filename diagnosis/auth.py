"""Logins: Django's password check, refused while a username is locked after failed attempts, and for members
altogether where the hospital's sign-on is the only way in (KIDNEYWEB_PASSWORD_LOGIN=false)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from . import services

logger = logging.getLogger(__name__)
PASSWORDS_OFF = ("Log in with your hospital account: kidneyweb's own passwords are turned off here (the server "
                 "operator's emergency accounts aside).")


def password_login_allowed(user: Any) -> bool:
    """Whether ``user`` may log in with a kidneyweb password: anyone, unless KIDNEYWEB_PASSWORD_LOGIN is off; then
    site superusers only, the operator's way in while the hospital's sign-on is down."""
    return settings.KIDNEYWEB_PASSWORD_LOGIN or bool(getattr(user, "is_superuser", False))


def _superuser(username: str) -> bool:
    return get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}, is_superuser=True).exists()


class ThrottledModelBackend(ModelBackend):
    """ModelBackend that counts failed passwords per username and refuses a locked one, even with the
    right password, so that guessing gains nothing while locked."""

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs: Any):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        if not settings.KIDNEYWEB_PASSWORD_LOGIN and not _superuser(username):
            # Checked before the password, which is then never compared (nor counted): nothing to learn from trying.
            raise PermissionDenied
        wait = services.login_wait_seconds(username=username)
        if wait:
            if request is not None:
                request.login_wait_seconds = wait  # the login form says how long
            raise PermissionDenied  # stops Django trying the other backends
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            services.login_failure_record(username=username)
        else:
            services.login_failures_clear(username=username)
            if not settings.KIDNEYWEB_PASSWORD_LOGIN:
                logger.warning("Emergency login: site superuser %s logged in with a kidneyweb password, which members "
                               "cannot (KIDNEYWEB_PASSWORD_LOGIN is off)", username)
        return user


def _locked(wait_seconds: int) -> ValidationError:
    minutes = -(-wait_seconds // 60)
    return ValidationError(
        f"Too many wrong passwords for this username. Try again in {minutes} minute{'s' * (minutes != 1)}, "
        "or ask an administrator of your organization to lift the lock.",
        code="throttled",
    )


class _SaysWhenLocked:
    request: HttpRequest | None

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()  # type: ignore[misc]
        except ValidationError:
            wait = getattr(self.request, "login_wait_seconds", 0)
            if wait:
                raise _locked(wait) from None
            if not settings.KIDNEYWEB_PASSWORD_LOGIN:
                # The same words for a member and for an operator's mistyped password: the answer names no account.
                raise ValidationError(PASSWORDS_OFF, code="passwords_off") from None
            raise


class LoginForm(_SaysWhenLocked, AuthenticationForm):
    error_messages = {**AuthenticationForm.error_messages,
                      "invalid_login": "The username or password is wrong. Please try again."}


class AdminLoginForm(_SaysWhenLocked, AdminAuthenticationForm):
    pass


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """The old password is a password guess too: wrong ones count towards the username's lock, so a
    session left open on a ward workstation cannot be used to find it."""

    def clean_old_password(self) -> str:
        username = self.user.get_username()
        wait = services.login_wait_seconds(username=username)
        if wait:
            raise _locked(wait)
        try:
            return super().clean_old_password()
        except ValidationError:
            services.login_failure_record(username=username)
            raise

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        new = cleaned.get("new_password2")
        # A temporary password that an administrator handed over must really be replaced.
        if new and cleaned.get("old_password") and new == cleaned["old_password"]:
            self.add_error("new_password2", "Choose a password different from the old one.")
        return cleaned
