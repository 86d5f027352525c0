"""/api/v1/record-system/: an integrator sets where results are sent as HL7 v2 messages (MLLP), lists what was sent
and how the record system acknowledged it, and sends a message it did not take again; administrators only."""

import pytest

from diagnosis.models import Hl7Delivery, Organization, StaffChange

from . import openapi
from .factories import ScanFactory, token_client

URL = "/api/v1/record-system/"
ADDRESS = "mllps://engine.example.org:6661"


@pytest.fixture
def admin_api(boss):
    return token_client(boss)


def _delivery(organization, **fields):
    return Hl7Delivery.objects.create(organization=organization, scan=ScanFactory(patient__organization=organization),
                                      event="review.saved", url=ADDRESS, **fields)


def test_an_administrator_sets_the_address_and_routing_and_the_change_is_recorded(client, admin_api, organization):
    response = admin_api.put(f"{URL}settings/", {"address": ADDRESS, "receiving_application": "EPIC"}, format="json")

    assert response.status_code == 200, response.content
    assert openapi.mismatches(openapi.load(client), "/api/v1/record-system/settings/", "put", response) == []
    assert response.json() == {"address": ADDRESS, "receiving_application": "EPIC", "receiving_facility": ""}
    assert admin_api.get(f"{URL}settings/").json() == response.json()
    assert StaffChange.objects.get().detail == f"AI results to the record system at {ADDRESS} (HL7 v2)"


def test_a_bad_or_unencrypted_address_is_a_400_with_the_reason_and_nothing_changes(admin_api, organization):
    bad = admin_api.put(f"{URL}settings/", {"address": "engine.example.org:6661"}, format="json")
    plain = admin_api.put(f"{URL}settings/", {"address": "mllp://engine.example.org:6661"}, format="json")
    reserved = admin_api.put(f"{URL}settings/", {"address": ADDRESS, "receiving_facility": "A&B"}, format="json")

    assert [r.status_code for r in (bad, plain, reserved)] == [400, 400, 400]
    assert "mllp://host:port" in bad.json()["address"][0]
    assert "KIDNEYWEB_HL7_ALLOW_PLAIN" in plain.json()["address"][0]
    assert "which HL7 reserves" in reserved.json()["receiving_facility"][0]
    assert Organization.objects.get(pk=organization.pk).hl7_address == ""


def test_the_messages_sent_are_listed_and_one_not_taken_is_sent_again(client, admin_api, organization, boss,
                                                                       other_organization):
    Organization.objects.filter(pk=organization.pk).update(hl7_address=ADDRESS)
    taken = _delivery(organization, status="delivered", ack_code="AA", control_id="0123456789abcdef0123")
    rejected = _delivery(organization, status="failed", ack_code="AR", attempts=1,
                         last_error="The record system rejected the message (AR): Unknown patient.")
    _delivery(other_organization, status="failed")

    listed = admin_api.get(URL)
    again = admin_api.post(f"{URL}{rejected.pk}/send-again/")

    assert openapi.mismatches(openapi.load(client), "/api/v1/record-system/", "get", listed) == []
    assert [(d["id"], d["ack_code"]) for d in listed.json()["results"]] == [(rejected.pk, "AR"), (taken.pk, "AA")]
    assert again.status_code == 202, again.content
    assert (again.json()["status"], again.json()["attempts"], again.json()["sent_again_by"]) == ("pending", 0,
                                                                                               boss.username)
    assert admin_api.post(f"{URL}{taken.pk}/send-again/").status_code == 400  # it was taken


def test_another_organizations_message_is_404_and_a_clinician_is_refused(admin_api, clinician, other_organization):
    theirs = _delivery(other_organization, status="failed")

    assert admin_api.get(f"{URL}{theirs.pk}/").status_code == 404
    refused = token_client(clinician).get(f"{URL}settings/")
    assert refused.status_code == 403 and "Only administrators" in refused.json()["detail"]


def test_earlier_results_are_sent_through_the_api(client, admin_api, organization):
    import datetime

    from .factories import DonePredictionFactory

    admin_api.put(f"{URL}settings/", {"address": ADDRESS}, format="json")
    DonePredictionFactory(scan=ScanFactory(patient__organization=organization))

    response = admin_api.post(f"{URL}send-since/", {"since": datetime.date.today().isoformat()}, format="json")

    assert response.status_code == 202 and response.json() == {"sent": 1}
    assert openapi.mismatches(openapi.load(client), "/api/v1/record-system/send-since/", "post", response) == []
    assert admin_api.post(f"{URL}send-since/", {"since": "2999-01-01"}, format="json").status_code == 400


def test_every_result_not_taken_is_sent_again_through_the_api(client, admin_api, organization):
    Organization.objects.filter(pk=organization.pk).update(hl7_address=ADDRESS)
    _delivery(organization, status="failed")

    response = admin_api.post(f"{URL}send-failed-again/")

    assert response.status_code == 202 and response.json() == {"sent": 1}
    assert openapi.mismatches(openapi.load(client), "/api/v1/record-system/send-failed-again/", "post", response) == []
