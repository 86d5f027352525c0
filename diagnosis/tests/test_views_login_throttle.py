"""Password guessing: a username is locked for a while after too many failed logins, on the app's login
page and the admin's, and the page says so instead of "wrong password"."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from diagnosis.models import LoginFailure

from .factories import PASSWORD, UserFactory

LOGIN = "/accounts/login/"


@pytest.fixture
def nurse(db):
    return UserFactory(username="nurse")


def attempt(client, password, username="nurse", url=LOGIN):
    return client.post(url, {"username": username, "password": password})


def test_five_wrong_passwords_lock_the_username_even_for_the_right_one(client, nurse, settings):
    settings.KIDNEYWEB_LOGIN_MAX_FAILURES = 5
    for _ in range(5):
        page = attempt(client, "guess").content.decode()
        assert "The username or password is wrong" in page

    page = attempt(client, PASSWORD).content.decode()

    assert "Too many wrong passwords for this username. Try again in 15 minutes" in page
    assert "_auth_user_id" not in client.session


def test_fewer_failures_than_the_limit_still_let_the_right_password_in_and_forget_the_failures(client, nurse):
    for _ in range(4):
        attempt(client, "guess")

    response = attempt(client, PASSWORD)

    assert response.status_code == 302 and client.session["_auth_user_id"] == str(nurse.pk)
    assert not LoginFailure.objects.filter(username="nurse").exists()


def test_the_lock_ends_when_the_window_has_passed(client, nurse):
    long_ago = timezone.now() - datetime.timedelta(minutes=16)
    LoginFailure.objects.bulk_create([LoginFailure(username="nurse", at=long_ago) for _ in range(5)])

    assert attempt(client, PASSWORD).status_code == 302


def test_the_lock_is_per_username_whatever_its_case_and_does_not_touch_colleagues(client, nurse):
    UserFactory(username="doctor")
    for _ in range(5):
        attempt(client, "guess", username="NURSE")

    assert "Too many wrong passwords" in attempt(client, PASSWORD).content.decode()
    assert attempt(client, PASSWORD, username="doctor").status_code == 302


def test_the_admin_login_counts_and_refuses_the_same_way(client, nurse):
    nurse.is_staff = True
    nurse.save()
    admin_login = reverse("admin:login")
    for _ in range(5):
        attempt(client, "guess", url=admin_login)

    page = attempt(client, PASSWORD, url=admin_login).content.decode()

    assert "Too many wrong passwords for this username" in page


def test_deleting_the_failures_in_the_django_admin_lifts_the_lock(client, nurse):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    for _ in range(5):
        attempt(client, "guess")
    client.force_login(root)
    changelist = reverse("admin:diagnosis_loginfailure_changelist")
    ids = [str(pk) for pk in LoginFailure.objects.values_list("pk", flat=True)]

    client.post(changelist, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    client.logout()

    assert attempt(client, PASSWORD).status_code == 302
