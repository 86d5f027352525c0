"""Gates before anything else: a temporary password is replaced, a login is confirmed with the member's
authenticator app, and two-factor authentication that the organization requires is set up."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from diagnosis import services
from diagnosis.models import Membership

from .factories import PASSWORD, MembershipFactory
from .totp import key_from_page, totp

NEW = "staple-cobalt-meadow-9"


@pytest.fixture
def temporary(organization, boss):
    return services.member_create(organization=organization, username="dr.lee", by=boss)[1]


def test_pages_and_the_api_send_a_temporary_password_holder_to_the_password_page(client, temporary):
    assert client.login(username="dr.lee", password=temporary)

    response = client.get("/patients/", follow=True)
    assert response.redirect_chain == [("/accounts/password/", 302)]
    assert "Choose your own password" in response.content.decode()
    api = client.get("/api/v1/patients/")
    assert api.status_code == 403 and "Choose your own to go on. (/accounts/password/)" in api.json()["detail"]


def test_after_choosing_a_new_password_everything_opens(client, temporary):
    client.login(username="dr.lee", password=temporary)

    response = client.post("/accounts/password/", {"old_password": temporary, "new_password1": NEW, "new_password2": NEW},
                           follow=True)

    assert response.redirect_chain[-1][0] == "/"
    assert client.get("/patients/").status_code == 200
    assert not Membership.objects.get(user__username="dr.lee").password_change_required
    assert Client().login(username="dr.lee", password=NEW)


def test_the_temporary_password_cannot_be_chosen_again(client, temporary):
    client.login(username="dr.lee", password=temporary)

    response = client.post("/accounts/password/", {"old_password": temporary, "new_password1": temporary,
                                                   "new_password2": temporary})

    assert "Choose a password different from the old one." in response.content.decode()
    assert Membership.objects.get(user__username="dr.lee").password_change_required


def test_logging_out_still_works(client, temporary):
    client.login(username="dr.lee", password=temporary)

    client.post("/accounts/logout/")

    assert client.get("/patients/").url.startswith("/accounts/login/")


@pytest.fixture
def nurse_with_app(nurse):
    device = services.two_factor_setup_start(user=nurse)
    services.two_factor_setup_confirm(user=nurse, token=totp(device.bin_key))
    return nurse, device.bin_key


def test_with_an_authenticator_the_password_alone_opens_nothing(client, nurse_with_app):
    assert client.login(username="nurse", password=PASSWORD)

    response = client.get("/patients/?q=Lee")
    assert response.status_code == 302 and response.url == "/accounts/two-factor/verify/?next=%2Fpatients%2F%3Fq%3DLee"
    assert client.get("/api/v1/patients/").status_code == 403
    assert client.get("/accounts/password/").status_code == 302  # not even the password page


def test_the_right_code_finishes_the_login_and_goes_where_the_user_was_going(client, nurse_with_app):
    _, key = nurse_with_app
    client.login(username="nurse", password=PASSWORD)

    response = client.post("/accounts/two-factor/verify/", {"code": totp(key, time.time() + 30), "next": "/patients/"})

    assert response.status_code == 302 and response.url == "/patients/"
    assert client.get("/patients/").status_code == 200
    assert client.get("/api/v1/patients/").status_code == 200


def test_a_wrong_code_is_refused_on_the_page(client, nurse_with_app):
    _, key = nurse_with_app
    client.login(username="nurse", password=PASSWORD)
    wrong = "123456" if totp(key, time.time() + 30) != "123456" else "654321"

    response = client.post("/accounts/two-factor/verify/", {"code": wrong})

    assert response.status_code == 400 and "That code is wrong or has expired" in response.content.decode()
    assert client.get("/patients/").status_code == 302


def test_the_login_never_sends_the_user_to_another_site(client, nurse_with_app):
    _, key = nurse_with_app
    client.login(username="nurse", password=PASSWORD)

    response = client.post("/accounts/two-factor/verify/", {"code": totp(key, time.time() + 30),
                                                           "next": "https://evil.example/"})

    assert response.url == "/"


def test_where_the_organization_requires_it_a_member_sets_it_up_before_anything_else(client, organization):
    organization.require_two_factor = True
    organization.save()
    MembershipFactory(organization=organization, user__username="nurse")
    client.login(username="nurse", password=PASSWORD)

    assert client.get("/patients/").url == "/accounts/"
    page = client.post("/accounts/two-factor/setup/")
    assert page.status_code == 200 and "no-store" in page["Cache-Control"] and 'src="data:image/svg+xml' in page.content.decode()
    key = key_from_page(page.content.decode())

    wrong = client.post("/accounts/two-factor/confirm/", {"code": "12"})
    assert wrong.status_code == 400 and key_from_page(wrong.content.decode()) == key  # the same key, to try again
    too_soon = client.post("/accounts/two-factor/confirm/", {"code": totp(key)})
    assert too_soon.status_code == 400 and "Too many wrong codes" in too_soon.content.decode()  # guessing slows down
    time.sleep(1.1)
    done = client.post("/accounts/two-factor/confirm/", {"code": totp(key)}, follow=True)

    assert "Two-factor authentication is on" in done.content.decode()
    assert client.get("/patients/").status_code == 200  # this session counts as confirmed


def test_a_site_superuser_with_an_authenticator_confirms_before_the_django_admin_opens(client, db):
    root = get_user_model().objects.create_superuser("root", "root@example.org", PASSWORD)
    device = services.two_factor_setup_start(user=root)
    services.two_factor_setup_confirm(user=root, token=totp(device.bin_key))
    client.login(username="root", password=PASSWORD)

    assert client.get("/admin/").url == "/accounts/two-factor/verify/?next=%2Fadmin%2F"
    client.post("/accounts/two-factor/verify/", {"code": totp(device.bin_key, time.time() + 30)})
    assert client.get("/admin/").status_code == 200
