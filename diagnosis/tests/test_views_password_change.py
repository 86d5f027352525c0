"""A signed-in user changes their own password: the old one stops working, a weak one is refused."""

import pytest
from django.test import Client

from .factories import PASSWORD

URL = "/accounts/password/"


def test_a_changed_password_replaces_the_old_one_and_ends_other_sessions(client, nurse):
    elsewhere = Client()
    assert elsewhere.login(username="nurse", password=PASSWORD)
    assert client.login(username="nurse", password=PASSWORD)
    assert 'href="/accounts/password/"' in client.get("/accounts/").content.decode()  # the account page links here

    response = client.post(URL, {"old_password": PASSWORD, "new_password1": "staple-cobalt-meadow-9",
                                 "new_password2": "staple-cobalt-meadow-9"}, follow=True)

    assert "Your password was changed" in response.content.decode()
    assert client.get("/patients/").status_code == 200  # this session stays
    assert elsewhere.get("/patients/").status_code == 302  # the other one ends
    assert not Client().login(username="nurse", password=PASSWORD)
    assert Client().login(username="nurse", password="staple-cobalt-meadow-9")


@pytest.mark.parametrize("old, new, message", [
    ("wrong", "staple-cobalt-meadow-9", "Your old password was entered incorrectly"),
    (PASSWORD, "password", "This password is too common"),
    (PASSWORD, "tulip-oak-9", "This password is too short. It must contain at least 12 characters."),
    (PASSWORD, "12345678901", "This password is entirely numeric"),
])
def test_a_wrong_old_password_or_a_weak_new_one_is_refused_and_nothing_changes(client, nurse, old, new, message):
    client.force_login(nurse)

    response = client.post(URL, {"old_password": old, "new_password1": new, "new_password2": new})

    assert response.status_code == 200 and message in response.content.decode()
    nurse.refresh_from_db()
    assert nurse.check_password(PASSWORD)


def test_the_page_needs_a_login(client, db):
    response = client.get(URL)

    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_wrong_old_passwords_count_towards_the_login_lock(client, nurse, settings):
    settings.KIDNEYWEB_LOGIN_MAX_FAILURES = 3
    client.force_login(nurse)
    wrong = {"old_password": "guess", "new_password1": "staple-cobalt-meadow-9", "new_password2": "staple-cobalt-meadow-9"}
    for _ in range(3):
        assert "Your old password was entered incorrectly" in client.post(URL, wrong).content.decode()

    right = {**wrong, "old_password": PASSWORD}
    assert "Too many wrong passwords for this username" in client.post(URL, right).content.decode()
    assert not Client().login(username="nurse", password=PASSWORD)  # the login is locked too
    nurse.refresh_from_db()
    assert nurse.check_password(PASSWORD)
