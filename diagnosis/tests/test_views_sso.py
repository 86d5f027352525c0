"""Single sign-on with the hospital's identity provider (a real OpenID Connect provider on localhost): a member logs
in with the hospital account and lands where they were going; a token that cannot be trusted, a callback this
browser did not start or a user kidneyweb does not know logs nobody in, and the login page says why. Logging out
ends the provider's session on the device too."""

from __future__ import annotations

import html
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from diagnosis import sso
from diagnosis.models import Authenticator, Membership


@pytest.fixture
def provider(identity_provider):
    return identity_provider


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _at_provider(url: str) -> str:
    """What the browser does at the provider: it is sent back; returns where to."""
    try:
        urllib.request.build_opener(_NoRedirects).open(url, timeout=10)
    except urllib.error.HTTPError as answer:
        assert answer.code == 302
        return answer.headers["Location"]
    raise AssertionError("the provider did not send the browser back")


def _sign_on(client, provider, next_url: str = ""):
    started = client.get("/accounts/sso/" + (f"?next={next_url}" if next_url else ""))
    assert started.status_code == 302 and started["Location"].startswith(f"{provider.url}/authorize?")
    return client.get(_at_provider(started["Location"]))


def _logged_in_as(client) -> str | None:
    user = client.get("/").wsgi_request.user
    return user.get_username() if user.is_authenticated else None


def test_a_member_logs_in_with_the_hospital_account_and_lands_where_they_were_going(client, provider, clinician):
    provider.user = "alice"
    page = client.get("/accounts/login/?next=/patients/").content.decode()
    assert 'id="sign-on" href="/accounts/sso/?next=/patients/"' in page
    assert "Log in with your hospital account" in page

    landed = _sign_on(client, provider, next_url="/patients/")

    assert landed.status_code == 302 and landed["Location"] == "/patients/"
    assert _logged_in_as(client) == "alice" and client.get("/patients/").status_code == 200
    (exchange,) = provider.token_requests
    assert exchange["grant_type"] == "authorization_code" and len(exchange["code_verifier"]) >= 43  # PKCE


def test_the_provider_owns_the_password_and_second_factor_rules_for_a_sign_on_but_not_for_a_password_login(
        client, provider, clinician):
    membership = Membership.objects.get(user=clinician)
    membership.password_change_required = True
    membership.save()
    membership.organization.require_two_factor = True
    membership.organization.save()
    provider.user = "alice"

    _sign_on(client, provider)

    assert client.get("/patients/").status_code == 200
    client.logout()
    client.force_login(clinician)
    assert client.get("/patients/")["Location"].startswith("/accounts/password/")


def test_the_username_matches_whatever_its_case_and_no_account_or_a_deactivated_one_opens_nothing(
        client, provider, clinician, organization):
    provider.user = "ALICE"
    assert _sign_on(client, provider)["Location"] == "/"
    assert _logged_in_as(client) == "alice"
    client.logout()

    provider.user = "mallory"
    refused = _sign_on(client, provider)
    assert refused["Location"] == "/accounts/login/" and _logged_in_as(client) is None
    said = client.get("/accounts/login/").content.decode()
    assert "There is no kidneyweb account for mallory" in said

    get_user_model().objects.filter(pk=clinician.pk).update(is_active=False)
    provider.user = "alice"
    _sign_on(client, provider)
    assert _logged_in_as(client) is None


@pytest.mark.parametrize("forge, said", [
    ("audience", "could not be trusted"), ("expired", "could not be trusted"), ("key", "could not be trusted"),
    ("nonce", "was not made for this login"),
])
def test_an_identity_token_that_cannot_be_trusted_logs_nobody_in(client, provider, clinician, forge, said):
    provider.user, provider.forge = "alice", forge

    refused = _sign_on(client, provider)

    assert refused["Location"] == "/accounts/login/" and _logged_in_as(client) is None
    assert said in client.get("/accounts/login/").content.decode()


def test_a_callback_this_browser_did_not_start_or_one_used_twice_logs_nobody_in(client, provider, clinician):
    provider.user = "alice"
    started = client.get("/accounts/sso/")
    callback = _at_provider(started["Location"])

    # Another browser, handed the link (a login forced on a victim), has no sign-on of its own on its way.
    other = Client()
    assert other.get(callback)["Location"] == "/accounts/login/"
    assert "was not started here" in other.get("/accounts/login/").content.decode()
    assert client.get(callback.replace("state=", "state=x")).status_code == 302 and _logged_in_as(client) is None
    # The mismatch used this browser's pending sign-on up: the real callback after it opens nothing either.
    assert client.get(callback)["Location"] == "/accounts/login/" and _logged_in_as(client) is None


def test_the_provider_refusing_or_not_answering_is_said_on_the_login_page(client, provider, clinician, settings):
    provider.user = None  # the user cancelled at the provider

    _sign_on(client, provider)

    assert "did not log you in: The user cancelled the login." in client.get("/accounts/login/").content.decode()
    sso.forget()
    settings.KIDNEYWEB_OIDC_ISSUER = "http://127.0.0.1:9"  # nothing listens there
    assert client.get("/accounts/sso/")["Location"] == "/accounts/login/"
    assert "did not answer" in client.get("/accounts/login/").content.decode()


def test_without_a_provider_set_up_there_is_no_sign_on(client, settings):
    settings.KIDNEYWEB_OIDC_ISSUER = ""

    assert client.get("/accounts/sso/").status_code == 404
    assert 'id="sign-on"' not in client.get("/accounts/login/").content.decode()


def test_a_member_who_set_up_a_kidneyweb_authenticator_still_confirms_with_it(client, provider, clinician):
    Authenticator.objects.create(user=clinician, name="authenticator app", confirmed=True)
    provider.user = "alice"

    _sign_on(client, provider)

    assert client.get("/patients/")["Location"].startswith("/accounts/two-factor/verify/")


def test_the_provider_is_asked_who_is_logging_in_each_time_and_a_session_it_passed_on_is_refused(
        client, provider, clinician, settings):
    provider.user = "alice"
    _sign_on(client, provider)
    assert provider.prompts == ["login"] and _logged_in_as(client) == "alice"
    client.logout()

    provider.forge = "session"  # the previous user's login at the provider, an hour ago on this workstation
    refused = _sign_on(client, provider)
    assert refused["Location"] == "/accounts/login/" and _logged_in_as(client) is None
    assert "did not ask who is logging in" in client.get("/accounts/login/").content.decode()

    settings.KIDNEYWEB_OIDC_PROMPT_LOGIN = False  # single-user devices: the provider's session is enough
    _sign_on(client, provider)
    assert provider.prompts[-1] == "" and _logged_in_as(client) == "alice"


def _end_session_link(page: str) -> str:
    match = re.search(r'id="end-session" href="([^"]+)"', page)
    assert match, page
    return html.unescape(match.group(1))


def test_logging_out_after_a_sign_on_ends_the_providers_session_too_and_comes_back_to_the_login_page(
        client, provider, clinician):
    provider.user = "alice"
    _sign_on(client, provider)
    (issued,) = provider.id_tokens

    answer = client.post("/accounts/logout/")

    assert answer.status_code == 200 and _logged_in_as(client) is None
    assert "no-store" in answer["Cache-Control"] and answer["Referrer-Policy"] == "no-referrer"
    link = _end_session_link(answer.content.decode())
    assert '<meta http-equiv="refresh" content="0;url=' in answer.content.decode()
    assert link.startswith(f"{provider.url}/logout?")
    asked = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))
    assert asked == {"id_token_hint": issued, "post_logout_redirect_uri": "http://testserver/accounts/login/",
                     "client_id": "kidneyweb"}
    assert _at_provider(link) == "http://testserver/accounts/login/"  # the provider knew the token, and sent it back
    assert provider.logouts == [asked]


def test_a_password_login_or_a_provider_without_logout_ends_kidneyweb_s_session_only(
        client, provider, clinician, settings):
    client.force_login(clinician)
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"

    provider.user, provider.end_session = "alice", False
    _sign_on(client, provider)
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"

    provider.end_session = True
    sso.forget()
    settings.KIDNEYWEB_OIDC_END_SESSION = False  # the hospital keeps its other applications' sessions open
    _sign_on(client, provider)
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"

    settings.KIDNEYWEB_OIDC_END_SESSION = True
    _sign_on(client, provider)
    settings.KIDNEYWEB_OIDC_ISSUER = "http://127.0.0.1:9"  # the provider down at logout: kidneyweb's is done
    sso.forget()
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"
    assert _logged_in_as(client) is None and provider.logouts == []
