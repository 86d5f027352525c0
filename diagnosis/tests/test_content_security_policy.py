"""Every response carries the Content-Security-Policy from the settings (the browser tests check the pages
work under it)."""

import pytest


@pytest.mark.parametrize("url", ["/accounts/login/", "/api/docs/", "/healthz"])
def test_responses_carry_the_policy(client, db, url):
    policy = client.get(url).headers["Content-Security-Policy"]

    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy


def test_an_empty_setting_turns_the_policy_off(client, db, settings):
    settings.KIDNEYWEB_CONTENT_SECURITY_POLICY = ""

    assert "Content-Security-Policy" not in client.get("/accounts/login/").headers
