"""A clinician logs in with the hospital account, in a real browser: the login page offers the hospital's sign-on,
the browser goes to the identity provider (a real OpenID Connect provider on localhost) and comes back logged in,
on the page it was going to. Logging out ends the provider's session on the device too, and comes back to the login
page."""

import pytest
from playwright.sync_api import expect

from ..factories import MembershipFactory, PatientFactory


@pytest.fixture
def provider(identity_provider, settings):
    settings.KIDNEYWEB_OIDC_LABEL = "Log in with your St. Elsewhere account"
    return identity_provider


def test_a_clinician_logs_in_with_the_hospital_account(page, organization, provider, screenshot):
    MembershipFactory(organization=organization, user__username="carol.jones")
    patient = PatientFactory(organization=organization, name="Ada Lovelace")
    provider.user = "carol.jones"

    page.goto(f"/patients/{patient.pk}/")  # not logged in: the login page, which comes back here
    screenshot(page, "login-sign-on")
    page.get_by_role("link", name="Log in with your St. Elsewhere account").click()

    expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
    expect(page.locator(".account")).to_contain_text("carol.jones")
    assert provider.token_requests and page.url.endswith(f"/patients/{patient.pk}/")


def test_logging_out_ends_the_hospital_sign_on_and_comes_back_to_the_login_page(page, organization, provider):
    MembershipFactory(organization=organization, user__username="carol.jones")
    provider.user = "carol.jones"
    page.goto("/")
    page.get_by_role("link", name="Log in with your St. Elsewhere account").click()
    expect(page.locator(".account")).to_contain_text("carol.jones")

    page.get_by_role("button", name="Log out").click()

    expect(page.get_by_role("link", name="Log in with your St. Elsewhere account")).to_be_visible()
    assert page.url.endswith("/accounts/login/")
    (logout,) = provider.logouts
    assert logout["id_token_hint"] == provider.id_tokens[-1]
    page.goto("/")
    assert page.url.endswith("/accounts/login/?next=/")


def test_with_passwords_off_the_password_form_stays_folded_until_the_operator_opens_it(page, organization, provider,
                                                                                       settings, screenshot):
    from ..factories import UserFactory

    settings.KIDNEYWEB_PASSWORD_LOGIN = False
    UserFactory(username="operator", is_superuser=True, is_staff=True)
    page.goto("/accounts/login/")

    expect(page.get_by_role("link", name="Log in with your St. Elsewhere account")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_hidden()
    screenshot(page, "login-sign-on-only")
    page.get_by_text("Server operator's emergency login").click()
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_contain_text("Log in with your hospital account")
    expect(page.get_by_label("Password")).to_be_visible()  # folded open again, to try once more
