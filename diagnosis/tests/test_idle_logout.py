"""A login ends after KIDNEYWEB_IDLE_SECONDS without the user doing anything; pages polling by
themselves (X-Background-Request) do not keep it alive."""

import time

import pytest

from kidneyweb.middleware import IdleLogoutMiddleware

KEY = IdleLogoutMiddleware.KEY
BACKGROUND = {"HTTP_X_BACKGROUND_REQUEST": "1"}


def _idle_for(client, seconds: float) -> None:
    session = client.session
    session[KEY] = time.time() - seconds
    session.save()


@pytest.fixture
def logged_in(ui_client):
    assert ui_client.get("/patients/").status_code == 200  # the first request starts the clock
    return ui_client


def test_a_login_idle_longer_than_the_limit_ends_with_a_note(logged_in, settings):
    settings.KIDNEYWEB_IDLE_SECONDS = 30 * 60
    _idle_for(logged_in, 31 * 60)

    response = logged_in.get("/patients/", follow=True)

    assert response.redirect_chain[0][0].startswith("/accounts/login/?next=/patients/")
    assert "You were logged out after 30 minutes without activity" in response.content.decode()
    assert logged_in.get("/patients/").status_code == 302  # the session is gone, not just this answer


def test_activity_within_the_limit_keeps_the_login(logged_in, settings):
    settings.KIDNEYWEB_IDLE_SECONDS = 30 * 60
    _idle_for(logged_in, 29 * 60)

    assert logged_in.get("/patients/").status_code == 200
    assert time.time() - logged_in.session[KEY] < 5  # the clock restarted


def test_polling_does_not_count_as_activity(logged_in, settings):
    settings.KIDNEYWEB_IDLE_SECONDS = 30 * 60
    _idle_for(logged_in, 29 * 60)

    assert logged_in.get("/worklist/rows/", **BACKGROUND).status_code == 200
    assert time.time() - logged_in.session[KEY] > 28 * 60

    _idle_for(logged_in, 31 * 60)
    response = logged_in.get("/worklist/rows/", **BACKGROUND)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_zero_turns_the_idle_logout_off(logged_in, settings):
    settings.KIDNEYWEB_IDLE_SECONDS = 0
    _idle_for(logged_in, 24 * 3600)

    assert logged_in.get("/patients/").status_code == 200

