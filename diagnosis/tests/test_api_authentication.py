"""API tokens: kept only as digests, sent as `Token` or `Bearer`, refused with a reason, and dated when used."""

import datetime

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from diagnosis import selectors, services
from diagnosis.models import ApiToken, StaffChange

PATIENTS = "/api/v1/patients/"


def _get(token: str, scheme: str = "Token"):
    return Client().get(PATIENTS, HTTP_AUTHORIZATION=f"{scheme} {token}")


def test_the_database_keeps_no_copy_of_an_issued_token_that_would_open_the_api(organization, boss, nurse):
    token = services.member_api_token_issue(organization=organization, member=nurse, by=boss)

    stored = ApiToken.objects.get(user=nurse)
    assert stored.digest == ApiToken.digest_of(token) and stored.digest != token
    assert stored.prefix == token[:8] and len(token) == 40
    with connection.cursor() as cursor:  # no column of the table holds the token itself
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")
        assert not any(token in str(value) for row in cursor.fetchall() for value in row)
    assert _get(token).status_code == 200
    assert _get(stored.digest).status_code == 401  # the stored digest is no token


def test_a_token_is_taken_as_a_bearer_token_too(organization, boss, nurse):
    token = services.member_api_token_issue(organization=organization, member=nurse, by=boss)

    assert _get(token, "Bearer").status_code == 200
    assert _get(token, "bearer").status_code == 200


def test_a_wrong_token_is_refused_with_what_to_do(organization, boss, nurse):
    token = services.member_api_token_issue(organization=organization, member=nurse, by=boss)

    response = _get(token[:-1] + ("0" if token[-1] != "0" else "1"))

    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert "Ask an administrator of your organization for a new one" in response.json()["detail"]


def test_a_header_with_a_space_in_the_token_is_refused_with_its_form(organization, boss, nurse):
    response = Client().get(PATIENTS, HTTP_AUTHORIZATION="Bearer two parts")

    assert response.status_code == 401
    assert response.json()["detail"] == "Send the API token as 'Authorization: Bearer <token>', one value without spaces."


def test_a_revoked_or_replaced_token_stops_working_at_once(organization, boss, nurse):
    first = services.member_api_token_issue(organization=organization, member=nurse, by=boss)
    second = services.member_api_token_issue(organization=organization, member=nurse, by=boss)

    assert _get(first).status_code == 401 and _get(second).status_code == 200
    services.member_api_token_revoke(organization=organization, member=nurse, by=boss)
    assert _get(second).status_code == 401 and not ApiToken.objects.exists()


def test_use_is_dated_for_the_administrator_without_a_write_per_request(organization, boss, nurse,
                                                                       django_assert_num_queries):
    token = services.member_api_token_issue(organization=organization, member=nurse, by=boss)
    assert selectors.organization_member_get(organization=organization, user_id=nurse.pk).token_last_used is None

    before = timezone.now()
    assert _get(token).status_code == 200
    first_use = ApiToken.objects.get().last_used_at
    assert first_use is not None and first_use >= before

    assert _get(token).status_code == 200
    assert ApiToken.objects.get().last_used_at == first_use  # within the granularity: not written again

    ApiToken.objects.update(last_used_at=first_use - datetime.timedelta(minutes=6))
    assert _get(token).status_code == 200
    assert ApiToken.objects.get().last_used_at > first_use - datetime.timedelta(minutes=6)
    member = selectors.organization_member_get(organization=organization, user_id=nurse.pk)
    assert member.token_prefix == token[:8] and member.token_last_used == ApiToken.objects.get().last_used_at


def test_administrators_see_which_token_a_member_holds_and_when_it_was_last_used(organization, boss, nurse):
    token = services.member_api_token_issue(organization=organization, member=nurse, by=boss)
    web = Client()
    web.force_login(boss)

    page = web.get(f"/staff/{nurse.pk}/").content.decode()
    assert f"<code>{token[:8]}…</code>" in page and "not used yet" in page and token not in page

    _get(token)
    page = web.get(f"/staff/{nurse.pk}/").content.decode()
    assert "last used " + timezone.localtime(ApiToken.objects.get().last_used_at).strftime("%Y-%m-%d %H:%M") in page
    api = Client(HTTP_AUTHORIZATION=f"Token {services.api_token_rotate(user=boss)}")
    row = api.get(f"/api/v1/members/{nurse.pk}/").json()
    assert row["api_token_prefix"] == token[:8] and row["api_token_last_used"] is not None


@pytest.mark.parametrize("scheme", ["Basic", "Digest"])
def test_other_authorization_schemes_are_not_taken_for_tokens(organization, boss, nurse, scheme):
    token = services.member_api_token_issue(organization=organization, member=nurse, by=boss)

    response = _get(token, scheme)

    assert response.status_code == 401  # no credentials of a kind the API takes
    assert "Authentication credentials were not provided" in response.json()["detail"]


def test_under_a_token_lifetime_an_older_token_is_refused_saying_when_it_expired_and_what_to_do(
        organization, boss, nurse):
    token = services.member_api_token_issue(organization=organization, member=nurse, by=boss)
    ApiToken.objects.update(created=timezone.now() - datetime.timedelta(days=91))
    assert _get(token).status_code == 200  # no lifetime yet

    older = services.organization_api_token_days_set(organization=organization, days=90, by=boss)

    assert older == 1
    response = _get(token)
    expired = (ApiToken.objects.get().created + datetime.timedelta(days=90)).strftime("%Y-%m-%d")
    assert response.status_code == 401
    assert response.json()["detail"] == (
        f"The token expired on {expired} (St. Elsewhere's API tokens work for 90 days after they are issued): ask an "
        "administrator of your organization for a new one.")
    fresh = services.member_api_token_issue(organization=organization, member=nurse, by=boss)
    assert _get(fresh).status_code == 200
    services.organization_api_token_days_set(organization=organization, days=None, by=boss)
    assert [change.detail for change in StaffChange.objects.filter(action="policy_changed").order_by("id")] == [
        "API tokens expire 90 days after they are issued", "API tokens do not expire"]


def test_administrators_set_the_lifetime_on_the_members_page_and_see_each_tokens_expiry(organization, boss, nurse):
    token = services.member_api_token_issue(organization=organization, member=nurse, by=boss)
    web = Client()
    web.force_login(boss)

    refused = web.post("/staff/token-policy/", {"tokens-api_token_days": "0"})
    assert refused.status_code == 400 and "Ensure this value is greater than or equal to 1" in refused.content.decode()

    page = web.post("/staff/token-policy/", {"tokens-api_token_days": "30"}, follow=True).content.decode()
    assert "API tokens now stop working 30 days after they were issued." in page
    assert "Each token stops working 30 days after it was" in page
    expires = timezone.localtime(ApiToken.objects.get().created + datetime.timedelta(days=30))
    assert f"expires {expires:%Y-%m-%d}" in page
    assert f"expires {expires:%Y-%m-%d %H:%M}" in web.get(f"/staff/{nurse.pk}/").content.decode()
    api = Client(HTTP_AUTHORIZATION=f"Token {services.api_token_rotate(user=boss)}")
    assert api.get(f"/api/v1/members/{nurse.pk}/").json()["api_token_expires"] is not None
    issued = web.post(f"/staff/{nurse.pk}/token/").content.decode()
    assert 'It stops working 30 days from now, on\n    <strong id="token-expires">' in issued
    assert _get(token).status_code == 401  # replaced by the one just issued

    ApiToken.objects.filter(user=nurse).update(created=timezone.now() - datetime.timedelta(days=31))
    assert "expired " in web.get("/staff/").content.decode()
