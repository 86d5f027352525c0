"""Every response carries the Content-Security-Policy from the settings (the browser tests check the pages
work under it)."""

import pytest


@pytest.mark.parametrize("url, signed_in", [("/accounts/login/", False), ("/api/docs/", True), ("/healthz", False)])
def test_responses_carry_the_policy(client, clinician, url, signed_in):
    if signed_in:
        client.force_login(clinician)
    response = client.get(url)
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]

    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy


def test_an_empty_setting_turns_the_policy_off(client, db, settings):
    settings.KIDNEYWEB_CONTENT_SECURITY_POLICY = ""

    assert "Content-Security-Policy" not in client.get("/accounts/login/").headers
