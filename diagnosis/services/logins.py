"""Password guessing: after too many failed logins for one username, that username waits.

Counted per username, not per address: behind a hospital's proxy every workstation shares one address,
and locking that would lock out the whole hospital.
"""

from __future__ import annotations

import datetime
import math

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import LoginFailure


def _key(username: str) -> str:
    # Usernames are looked up case-sensitively, but "Alice" and "alice" are the same guesser's targets.
    return username.strip().lower()[:150]


def _window() -> datetime.timedelta:
    return datetime.timedelta(minutes=settings.KIDNEYWEB_LOGIN_LOCK_MINUTES)


def login_wait_seconds(*, username: str) -> int:
    """Seconds before this username may try a password again; 0 when it may now."""
    now = timezone.now()
    recent = list(
        LoginFailure.objects.filter(username=_key(username), at__gt=now - _window())
        .order_by("-at").values_list("at", flat=True)[: settings.KIDNEYWEB_LOGIN_MAX_FAILURES]
    )
    if len(recent) < settings.KIDNEYWEB_LOGIN_MAX_FAILURES:
        return 0
    # Locked until the oldest of the last N failures leaves the window.
    return max(1, math.ceil((recent[-1] + _window() - now).total_seconds()))


@transaction.atomic
def login_failure_record(*, username: str) -> None:
    now = timezone.now()
    LoginFailure.objects.filter(at__lte=now - _window()).delete()  # nothing older counts
    LoginFailure.objects.create(username=_key(username), at=now)


def login_failures_clear(*, username: str) -> int:
    """Forget the username's failed logins, lifting a lock; how many there were."""
    return LoginFailure.objects.filter(username=_key(username)).delete()[0]
