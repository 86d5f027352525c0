"""POST /api/v1/scans/{id}/refile/: a hospital system files a slice uploaded for the wrong patient for the
right one, as the schema says; both scans name each other."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from diagnosis.models import Scan

from . import openapi
from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ScanFactory, token_client

REFILE = "/api/v1/scans/{id}/refile/"


def _scan(organization, uploader):
    scan = ScanFactory(patient=PatientFactory(organization=organization, name="Wrong Person"), uploaded_by=uploader)
    DonePredictionFactory(scan=scan)
    return scan


def test_refiling_answers_the_new_scan_and_both_scans_name_each_other(client, api_client, clinician, organization,
                                                                     active_model_version):
    scan = _scan(organization, clinician)
    right = PatientFactory(organization=organization)

    response = api_client.post(REFILE.format(id=scan.pk), {"patient": right.pk, "reason": "wrong patient"}, format="json")

    assert response.status_code == 201, response.json()
    assert openapi.mismatches(openapi.load(client), REFILE, "post", response) == []
    body = response.json()
    assert body["patient"] == right.pk and body["refiled_from"] == scan.pk and body["refiled_as"] == []
    assert body["prediction"]["status"] == "queued" and body["review"] is None and body["withdrawn"] is None
    old = api_client.get(f"/api/v1/scans/{scan.pk}/").json()
    assert old["refiled_as"] == [body["id"]] and old["withdrawn"]["reason"] == "wrong patient"
    assert old["refiled_from"] is None and old["patient"] == scan.patient_id


def test_refusals_say_why_and_change_nothing(client, api_client, clinician, nurse, organization, other_organization,
                                            active_model_version):
    scan = _scan(organization, clinician)
    right = PatientFactory(organization=organization)

    no_reason = api_client.post(REFILE.format(id=scan.pk), {"patient": right.pk}, format="json")
    assert no_reason.status_code == 400 and "Say why the scan is withdrawn" in str(no_reason.json()["reason"])
    outsider = PatientFactory(organization=other_organization)
    elsewhere = api_client.post(REFILE.format(id=scan.pk), {"patient": outsider.pk, "reason": "x"}, format="json")
    assert elsewhere.status_code == 400
    assert elsewhere.json() == {"patient": [f"No patient with id {outsider.pk} in your organization."]}
    own = api_client.post(REFILE.format(id=scan.pk), {"patient": scan.patient_id, "reason": "x"}, format="json")
    assert own.status_code == 400 and "already Wrong Person's" in str(own.json()["patient"])
    forbidden = token_client(nurse).post(REFILE.format(id=scan.pk), {"patient": right.pk, "reason": "x"}, format="json")
    assert forbidden.status_code == 403 and "can file it for another patient" in forbidden.json()["detail"]
    for refused in (no_reason, elsewhere, own, forbidden):
        assert openapi.mismatches(openapi.load(client), REFILE, "post", refused) == []
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and Scan.objects.count() == 1


def test_without_an_active_model_it_answers_503_and_changes_nothing(client, api_client, clinician, organization):
    scan = _scan(organization, clinician)
    right = PatientFactory(organization=organization)

    response = api_client.post(REFILE.format(id=scan.pk), {"patient": right.pk, "reason": "wrong patient"}, format="json")

    assert response.status_code == 503
    assert openapi.mismatches(openapi.load(client), REFILE, "post", response) == []
    assert not Scan.objects.get(pk=scan.pk).is_withdrawn and Scan.objects.count() == 1


def test_the_scan_list_reads_every_filing_in_one_query(api_client, clinician, organization, active_model_version):
    from diagnosis import services

    patient = PatientFactory(organization=organization)

    def list_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api_client.get("/api/v1/scans/").status_code == 200
        return len(queries)

    # With a prediction, so that the baseline runs every prefetch (a level with no rows above it is skipped).
    PredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician))
    list_queries()  # the token's first use is dated, a write the later requests skip
    before = list_queries()
    for seed in range(3):
        scan = ScanFactory(patient=patient, uploaded_by=clinician, width=64 + seed)
        services.scan_refile(scan=scan, patient=PatientFactory(organization=organization), user=clinician,
                             reason="wrong patient")

    assert list_queries() == before
