"""Recovery codes on the web: shown once after the app is set up, counted on the Account page, renewed
with the app's code, and a way to finish a login when the phone is not at hand."""

import re
import time

import pytest
from django.test import Client

from diagnosis import selectors, services

from .factories import PASSWORD
from .totp import key_from_page, settled_totp, totp


def _codes(response) -> list[str]:
    return re.findall(r"<li><code>([a-z2-9-]{14})</code></li>", response.content.decode())


@pytest.fixture
def nurse_with_app(nurse):
    device = services.two_factor_setup_start(user=nurse)
    _, codes = services.two_factor_setup_confirm(user=nurse, token=totp(device.bin_key))
    return device.bin_key, codes


def _log_in_with_password(nurse) -> Client:
    client = Client()
    assert client.login(username=nurse.username, password=PASSWORD)
    return client


def test_setting_up_the_app_shows_the_codes_once_and_those_are_the_ones_that_work(client, nurse):
    client.force_login(nurse)
    key = key_from_page(client.post("/accounts/two-factor/setup/").content.decode())

    response = client.post("/accounts/two-factor/confirm/", {"code": settled_totp(key)})

    assert response.status_code == 200 and "private, no-store" in response["Cache-Control"]
    codes = _codes(response)
    assert len(codes) == 10
    assert "this page is the only time they are shown" in response.content.decode()
    assert "10</strong> of 10 left" in client.get("/accounts/").content.decode()
    services.two_factor_recover(user=nurse, code=codes[9])  # what the page showed is what is stored


def test_the_login_page_for_the_code_offers_a_recovery_code_keeping_where_the_user_was_going(nurse_with_app, nurse):
    client = _log_in_with_password(nurse)

    verify = client.get("/patients/?q=Lee", follow=True)

    assert 'href="/accounts/two-factor/recover/?next=/patients/%3Fq%3DLee"' in verify.content.decode()
    assert client.get("/accounts/two-factor/recover/?next=/patients/").status_code == 200  # open before the code


def test_a_recovery_code_finishes_the_login_and_says_how_many_are_left(nurse_with_app, nurse):
    _, codes = nurse_with_app
    client = _log_in_with_password(nurse)

    response = client.post("/accounts/two-factor/recover/", {"code": codes[2], "next": "/patients/"})

    assert response.status_code == 302 and response.url == "/patients/"
    page = client.get("/patients/")
    assert page.status_code == 200
    assert "You logged in with a recovery code; 9 of your codes are left." in page.content.decode()
    assert client.get("/api/v1/patients/").status_code == 200


def test_a_used_or_wrong_recovery_code_is_refused_on_the_page(nurse_with_app, nurse):
    _, codes = nurse_with_app
    services.two_factor_recover(user=nurse, code=codes[0])
    time.sleep(0.1)
    client = _log_in_with_password(nurse)

    response = client.post("/accounts/two-factor/recover/", {"code": codes[0]})

    assert response.status_code == 400 and "That recovery code is wrong or has been used." in response.content.decode()
    assert client.get("/patients/").status_code == 302  # still not logged in


def test_new_codes_need_the_apps_code_and_are_shown_once(nurse_with_app, nurse):
    key, old = nurse_with_app
    client = _log_in_with_password(nurse)
    client.post("/accounts/two-factor/recover/", {"code": old[9]})
    assert selectors.recovery_codes_left(user=nurse) == 9
    wrong = "123456" if totp(key, time.time() + 30) != "123456" else "654321"

    refused = client.post("/accounts/two-factor/recovery-codes/", {"renew-code": wrong}, follow=True)
    assert "That code is wrong or has expired" in refused.content.decode()
    assert selectors.recovery_codes_left(user=nurse) == 9
    time.sleep(1.1)

    response = client.post("/accounts/two-factor/recovery-codes/", {"renew-code": totp(key, time.time() + 30)})

    assert response.status_code == 200 and "private, no-store" in response["Cache-Control"]
    new = _codes(response)
    assert len(new) == 10 and not set(new) & set(old)
    assert "the earlier ones no longer work" in response.content.decode()


def test_a_site_superuser_outside_any_organization_sets_up_the_app_on_the_account_page_and_gets_codes(db):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.org", PASSWORD)
    client = _log_in_with_password(root)
    account = client.get("/accounts/")
    assert account.status_code == 200
    assert "None (site administrator)" in account.content.decode()
    key = key_from_page(client.post("/accounts/two-factor/setup/").content.decode())

    codes = _codes(client.post("/accounts/two-factor/confirm/", {"code": settled_totp(key)}))

    assert len(codes) == 10
    again = _log_in_with_password(root)
    assert again.get("/admin/").status_code == 302  # the password alone no longer opens the Django admin
    assert again.post("/accounts/two-factor/recover/", {"code": codes[0], "next": "/admin/"}).url == "/admin/"
    assert again.get("/admin/").status_code == 200
    assert selectors.recovery_codes_left(user=root) == 9
