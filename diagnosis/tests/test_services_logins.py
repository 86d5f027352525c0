"""How long a username waits after failed logins, and that old failures are forgotten."""

import datetime

from django.utils import timezone

from diagnosis import services
from diagnosis.models import LoginFailure


def test_the_wait_lasts_until_the_oldest_of_the_last_failures_leaves_the_window(db, settings):
    settings.KIDNEYWEB_LOGIN_MAX_FAILURES, settings.KIDNEYWEB_LOGIN_LOCK_MINUTES = 3, 10
    now = timezone.now()
    LoginFailure.objects.bulk_create([LoginFailure(username="nurse", at=now - datetime.timedelta(minutes=m))
                                      for m in (1, 4, 9)])

    assert 50 <= services.login_wait_seconds(username="Nurse") <= 60  # the 9-minute-old one has a minute left
    assert services.login_wait_seconds(username="doctor") == 0


def test_recording_a_failure_drops_failures_older_than_the_window(db, settings):
    settings.KIDNEYWEB_LOGIN_LOCK_MINUTES = 10
    LoginFailure.objects.create(username="someone", at=timezone.now() - datetime.timedelta(minutes=11))

    services.login_failure_record(username=" Nurse ")

    assert list(LoginFailure.objects.values_list("username", flat=True)) == ["nurse"]
