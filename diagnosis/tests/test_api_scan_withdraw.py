"""POST /api/v1/scans/{id}/withdraw/: a hospital system withdraws a scan entered in error, as the schema says."""

from diagnosis.models import Scan

from . import openapi
from .factories import DonePredictionFactory, PatientFactory, ScanFactory, token_client

WITHDRAW = "/api/v1/scans/{id}/withdraw/"


def test_withdrawing_answers_the_scan_with_who_when_and_why(client, api_client, clinician, organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)
    DonePredictionFactory(scan=scan)

    response = api_client.post(WITHDRAW.format(id=scan.pk), {"reason": "wrong patient"}, format="json")

    assert response.status_code == 200
    assert openapi.mismatches(openapi.load(client), WITHDRAW, "post", response) == []
    withdrawn = response.json()["withdrawn"]
    assert (withdrawn["by"], withdrawn["reason"]) == ("alice", "wrong patient") and withdrawn["at"]
    assert api_client.get("/api/v1/worklist/").json()["results"] == []
    again = api_client.post(f"/api/v1/scans/{scan.pk}/predict/")
    assert again.status_code == 400 and "withdrawn as entered in error" in str(again.json())
    assert openapi.mismatches(openapi.load(client), "/api/v1/scans/{id}/predict/", "post", again) == []
    review = api_client.post(f"/api/v1/scans/{scan.pk}/review/", {"label": "Stone"}, format="json")
    assert review.status_code == 400 and "withdrawn as entered in error" in str(review.json())


def test_a_scan_not_withdrawn_says_null(api_client, clinician, organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)

    assert api_client.get(f"/api/v1/scans/{scan.pk}/").json()["withdrawn"] is None


def test_refusals_say_why(client, api_client, clinician, nurse, organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization), uploaded_by=clinician)

    missing = api_client.post(WITHDRAW.format(id=scan.pk), {}, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()
    forbidden = token_client(nurse).post(WITHDRAW.format(id=scan.pk), {"reason": "x"}, format="json")
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == "Only the clinician who uploaded this scan or an administrator can withdraw it."
    assert openapi.mismatches(openapi.load(client), WITHDRAW, "post", forbidden) == []
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn


def test_the_scan_list_leaves_withdrawn_scans_out_or_in_on_request(api_client, clinician, organization):
    patient = PatientFactory(organization=organization)
    kept, withdrawn = (ScanFactory(patient=patient, uploaded_by=clinician) for _ in range(2))
    api_client.post(WITHDRAW.format(id=withdrawn.pk), {"reason": "wrong patient"}, format="json")

    def ids(query):
        return [row["id"] for row in api_client.get(f"/api/v1/scans/{query}").json()["results"]]

    assert sorted(ids("")) == sorted([kept.pk, withdrawn.pk])
    assert ids("?withdrawn=false") == [kept.pk] and ids("?withdrawn=true") == [withdrawn.pk]
    refused = api_client.get("/api/v1/scans/?withdrawn=maybe")
    assert refused.status_code == 400 and refused.json() == {"withdrawn": ["'maybe' is neither true nor false."]}
