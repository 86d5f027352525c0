"""GET /api/v1/performance/: a model version's performance on the organization's patients, as the schema says."""

import pytest

from django.utils import timezone

from diagnosis.models import InputsAlert, Membership, PerformanceAlert

from . import openapi
from .factories import MembershipFactory, ModelVersionFactory, token_client
from .test_selectors_performance import carded_version, result, reviewed

URL = "/api/v1/performance/"


def test_administrators_get_the_active_versions_measures_against_its_card(client, organization):
    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN).user
    active = carded_version(is_active=True)
    reviewed(organization, active, "Tumor", "Tumor", count=3)
    reviewed(organization, active, "Normal", "Tumor", count=9)
    result(organization, active, "Stone", top=0.5)

    api = token_client(admin)
    response = api.get(URL)

    assert response.status_code == 200, response.json()
    assert openapi.mismatches(openapi.load(client), URL, "get", response) == []
    body = response.json()
    assert (body["model_version"], body["active"], body["diagnosed"], body["uncertain"], body["reviewed"]) == (
        active.pk, True, 13, 1, 12)
    tumor = next(c for c in body["classes"] if c["name"] == "Tumor")
    assert (tumor["found"]["count"], tumor["found"]["of"], tumor["found"]["patients"], tumor["found"]["card"],
            tumor["found"]["verdict"]) == (3, 12, 12, 0.65, "below")
    low, high = tumor["found"]["interval"]
    assert 0.08 < low < 0.10 and 0.52 < high < 0.54
    assert body["below"] == ["AI labels kept", "Tumor found"]
    assert len(body["weeks"]) == 12 and body["weeks"][0]["diagnosed"] == 13 and body["min_reviewed"] == 10
    assert body["alerts"] == []  # reviews stored directly here, not through the service that raises alerts
    inputs = body["inputs"]
    assert (inputs["weeks"], inputs["diagnosed"], inputs["out_of_scope"], inputs["patients"], inputs["effective"],
            inputs["rate"], inputs["min_results"], inputs["verdict"]) == (4, 13, 0, 13, 13.0, 0.0, 50, "too_few")
    assert inputs["expected"] == pytest.approx(0.005) and inputs["interval"] == [0.0, pytest.approx(0.2281, abs=1e-4)]
    PerformanceAlert.objects.create(organization=organization, model_version=active, measures=["Tumor found"])
    again = api.get(URL)
    assert openapi.mismatches(openapi.load(client), URL, "get", again) == []
    assert [(a["measures"], a["cleared_at"]) for a in again.json()["alerts"]] == [(["Tumor found"], None)]
    assert again.json()["inputs_alerts"] == []
    InputsAlert.objects.create(organization=organization, model_version=active, out_of_scope=3, diagnosed=60,
                               cleared_at=timezone.now(), ended=InputsAlert.Ended.TOO_FEW)
    InputsAlert.objects.create(organization=organization, model_version=active, out_of_scope=5, diagnosed=70)
    third = api.get(URL)
    assert openapi.mismatches(openapi.load(client), URL, "get", third) == []
    assert [(a["out_of_scope"], a["diagnosed"], a["ended"], a["cleared_at"] is None)
            for a in third.json()["inputs_alerts"]] == [(5, 70, "", True), (3, 60, "too_few", False)]


def test_another_version_is_asked_for_by_id_and_counts_only_the_organizations_results(organization, other_organization):
    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN).user
    earlier = carded_version()
    carded_version(is_active=True)
    reviewed(organization, earlier, "Cyst", "Cyst", count=2)
    elsewhere = ModelVersionFactory()
    result(other_organization, elsewhere, "Stone")
    api = token_client(admin)

    body = api.get(URL, {"model_version": earlier.pk}).json()
    unused = api.get(URL, {"model_version": elsewhere.pk}).json()
    missing = api.get(URL, {"model_version": elsewhere.pk + 100})
    bad = api.get(URL, {"model_version": "seven"})

    assert (body["model_version"], body["active"], body["accuracy"]["count"], body["accuracy"]["verdict"]) == (
        earlier.pk, False, 2, "too_few")
    assert (unused["model_version"], unused["diagnosed"], unused["reviewed"]) == (elsewhere.pk, 0, 0)
    assert missing.status_code == 404 and "no model version with that id" in missing.json()["detail"]
    assert bad.status_code == 400 and "model_version" in bad.json()


def test_more_weeks_or_every_week_since_the_first_result_are_returned_on_request(client, organization):
    import datetime

    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN).user
    active = carded_version(is_active=True)
    result(organization, active, "Cyst", finished_at=timezone.now() - datetime.timedelta(weeks=30))
    result(organization, active, "Stone")
    api = token_client(admin)

    every = api.get(URL, {"weeks": "all"})
    three = api.get(URL, {"weeks": 3}).json()["weeks"]
    refused = [api.get(URL, {"weeks": value}) for value in ("0", "twelve", "1000")]

    assert openapi.mismatches(openapi.load(client), URL, "get", every) == []
    weeks = every.json()["weeks"]
    assert len(weeks) == 31 and weeks[-1]["diagnosed"] == weeks[0]["diagnosed"] == 1  # newest first, to the first
    assert len(three) == 3 and len(api.get(URL).json()["weeks"]) == 12
    assert all(r.status_code == 400 and r.json()["weeks"] == ["Send a number of weeks from 1 to 999, or all."]
               for r in refused)


def test_without_any_version_the_answer_is_404_with_the_reason(organization):
    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN).user

    response = token_client(admin).get(URL)

    assert response.status_code == 404 and "No model version is active" in response.json()["detail"]


def test_clinicians_are_refused_with_a_reason(api_client):
    response = api_client.get(URL)

    assert response.status_code == 403 and "Only administrators" in response.json()["detail"]
