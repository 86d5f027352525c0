"""A token that sends more requests than KIDNEYWEB_API_RATE allows gets 429 with Retry-After, as the schema
says; other tokens are not slowed."""

from .factories import token_client


def test_requests_beyond_the_rate_are_refused_with_when_to_try_again(settings, clinician, nurse):
    settings.KIDNEYWEB_API_RATE = "3/minute"
    api = token_client(clinician)

    answers = [api.get("/api/v1/patients/").status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]
    refused = api.get("/api/v1/patients/")
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"].lower()
    assert token_client(nurse).get("/api/v1/patients/").status_code == 200  # counted per token


def test_an_empty_rate_sets_no_limit(settings, clinician):
    settings.KIDNEYWEB_API_RATE = ""
    api = token_client(clinician)

    assert {api.get("/api/v1/patients/").status_code for _ in range(30)} == {200}
