"""/api/v1/archive/: an integrator sets where AI results are stored in the archive (PACS), lists what was sent and
how the archive answered, and sends results it did not store again; administrators only, as on the Members page."""

import pytest
from rest_framework.test import APIClient

from diagnosis.models import Organization, PacsDelivery, StaffChange

from . import openapi
from .factories import PacsDeliveryFactory, token_client

URL = "/api/v1/archive/"
ARCHIVE = "https://pacs.example.org/dicom-web"


@pytest.fixture
def admin_api(boss):
    return token_client(boss)


def _delivery(organization, **fields):
    return PacsDeliveryFactory(prediction__scan__patient__organization=organization, **fields)


def test_structured_reports_are_asked_for_and_kept_when_a_later_change_does_not_say(admin_api, organization):
    on = admin_api.put(f"{URL}settings/", {"url": ARCHIVE, "send_reports": True}, format="json")
    kept = admin_api.put(f"{URL}settings/", {"url": ARCHIVE}, format="json")
    off = admin_api.put(f"{URL}settings/", {"url": ARCHIVE, "send_reports": False}, format="json")

    assert [r.json()["send_reports"] for r in (on, kept, off)] == [True, True, False]
    assert admin_api.get(f"{URL}settings/").json()["send_reports"] is False
    assert StaffChange.objects.filter(organization=organization,
                                      detail__startswith="AI results with structured reports").count() == 2


def test_an_administrator_sets_the_archive_and_the_password_is_never_answered(client, admin_api, organization):
    response = admin_api.put(f"{URL}settings/", {"url": ARCHIVE, "username": "ai", "password": "s3cret"}, format="json")

    assert response.status_code == 200, response.content
    assert openapi.mismatches(openapi.load(client), "/api/v1/archive/settings/", "put", response) == []
    assert response.json() == {"url": ARCHIVE, "username": "ai", "password_set": True, "send_reports": False,
                               "oauth": None, "client_certificate": None}
    assert response["Cache-Control"] == "private, no-store"
    assert admin_api.get(f"{URL}settings/").json() == {"url": ARCHIVE, "username": "ai", "password_set": True,
                                                       "send_reports": False, "oauth": None,
                                                       "client_certificate": None}
    organization.refresh_from_db()
    assert organization.pacs_password == "s3cret"
    assert StaffChange.objects.get().detail == "AI results to the archive at pacs.example.org as ai"


def test_a_bad_address_answers_400_with_the_reason_and_changes_nothing(admin_api, organization):
    response = admin_api.put(f"{URL}settings/", {"url": "http://pacs.example.org/dicom-web"}, format="json")

    assert response.status_code == 400 and "starting with https://" in str(response.json())
    assert Organization.objects.get(pk=organization.pk).pacs_url == ""


def test_results_sent_are_listed_newest_first_and_a_failed_one_is_sent_again(client, admin_api, organization, boss):
    Organization.objects.filter(pk=organization.pk).update(pacs_url=ARCHIVE)
    failed = _delivery(organization, status="failed", attempts=1, response_status=401,
                       last_error="The archive answered 401 Unauthorized.")
    stored = _delivery(organization, status="delivered", attempts=1, response_status=200)

    listed = admin_api.get(URL)
    assert openapi.mismatches(openapi.load(client), "/api/v1/archive/", "get", listed) == []
    assert [d["id"] for d in listed.json()["results"]] == [stored.pk, failed.pk]
    assert listed.json()["results"][1]["instance_uid"] == failed.sop_instance_uid

    again = admin_api.post(f"{URL}{failed.pk}/send-again/")
    assert again.status_code == 202 and again.json()["status"] == "pending" and again.json()["sent_again_by"] == boss.username
    refused = admin_api.post(f"{URL}{stored.pk}/send-again/")
    assert refused.status_code == 400 and "this one is delivered" in str(refused.json())


def test_every_failed_result_is_sent_again_at_once(admin_api, organization):
    Organization.objects.filter(pk=organization.pk).update(pacs_url=ARCHIVE)
    for _ in range(3):
        _delivery(organization, status="failed", last_error="Gave up after 6 attempts.")

    response = admin_api.post(f"{URL}send-failed-again/")

    assert response.status_code == 202 and response.json() == {"sent": 3}
    assert set(PacsDelivery.objects.values_list("status", flat=True)) == {"pending"}


def test_clinicians_and_other_organizations_see_nothing(api_client, admin_api, other_organization):
    theirs = _delivery(other_organization, status="failed")

    assert api_client.get(URL).status_code == 403
    assert "Only administrators" in api_client.put(f"{URL}settings/", {"url": ARCHIVE}, format="json").json()["detail"]
    assert admin_api.get(f"{URL}{theirs.pk}/").status_code == 404
    assert admin_api.post(f"{URL}{theirs.pk}/send-again/").status_code == 404
    assert APIClient().get(URL).status_code == 401


def test_checking_the_connection_answers_what_the_archive_said(client, admin_api, organization, boss, orthanc, settings):
    from diagnosis import services

    from . import orthanc as pacs

    assert admin_api.post(f"{URL}check/").status_code == 400  # no archive set
    settings.KIDNEYWEB_PACS_ALLOW_HTTP = True  # the archive here is plain http on localhost
    services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME, password=pacs.PASSWORD,
                      by=boss)

    response = admin_api.post(f"{URL}check/")

    assert response.status_code == 200 and "its DICOMweb service is reached (200)" in response.json()["detail"]
    assert openapi.mismatches(openapi.load(client), "/api/v1/archive/check/", "post", response) == []


def test_earlier_results_are_sent_on_request_and_a_future_day_is_refused(client, admin_api, organization):
    import datetime

    Organization.objects.filter(pk=organization.pk).update(pacs_url=ARCHIVE)
    future = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()

    response = admin_api.post(f"{URL}send-since/", {"since": "2026-01-01"}, format="json")
    refused = admin_api.post(f"{URL}send-since/", {"since": future}, format="json")

    assert response.status_code == 202 and response.json() == {"sent": 0}  # nothing finished here yet
    assert openapi.mismatches(openapi.load(client), "/api/v1/archive/send-since/", "post", response) == []
    assert refused.status_code == 400 and "a day that has passed" in str(refused.json())


def test_a_withdrawn_scans_rejection_note_is_listed_and_named_on_the_scan(client, admin_api, organization, boss):
    from diagnosis import services

    Organization.objects.filter(pk=organization.pk).update(pacs_url=ARCHIVE)
    stored = _delivery(organization, status="delivered", attempts=1, response_status=200)
    services.scan_withdraw(scan=stored.scan, user=boss, reason="Wrong patient.")
    note = PacsDelivery.objects.get(kind=PacsDelivery.Kind.REJECTION)

    listed = admin_api.get(URL)
    scan = admin_api.get(f"/api/v1/scans/{stored.scan_id}/")

    assert openapi.mismatches(openapi.load(client), "/api/v1/archive/", "get", listed) == []
    first = listed.json()["results"][0]
    assert (first["kind"], first["prediction"], first["rejected_instance_uids"], first["status"]) == (
        "rejection", None, [stored.sop_instance_uid], "pending")
    assert listed.json()["results"][1]["kind"] == "capture"
    assert openapi.mismatches(openapi.load(client), "/api/v1/scans/{id}/", "get", scan) == []
    assert scan.json()["dicom"]["archive_rejection"] == {
        "status": "pending", "instance_uid": note.sop_instance_uid, "rejected_instance_uids": [stored.sop_instance_uid],
        "stored_at": None, "error": ""}
    restored = services.scan_restore(scan=stored.scan, user=boss, reason="Withdrawn by mistake.")
    assert admin_api.get(f"/api/v1/scans/{restored.pk}/").json()["dicom"]["archive_rejection"] is None


def test_an_integrator_uploads_a_client_certificate_whose_key_is_never_answered_and_removes_it(
        client, admin_api, organization):
    from . import certificates

    ours = certificates.client("kidneyweb", by=certificates.issue("St. Elsewhere CA", ca=True))
    path = "/api/v1/archive/client-certificate/"

    response = admin_api.put(path, {"certificate": ours.pem, "key": ours.key_pem()}, format="json")

    assert response.status_code == 200, response.content
    assert openapi.mismatches(openapi.load(client), path, "put", response) == []
    body = response.json()
    assert (body["subject"], body["issuer"], body["expires_soon"]) == ("kidneyweb", "St. Elsewhere CA", True)
    assert "key" not in body and "PRIVATE KEY" not in response.content.decode()
    settings = admin_api.get(f"{URL}settings/")
    assert openapi.mismatches(openapi.load(client), "/api/v1/archive/settings/", "get", settings) == []
    assert settings.json()["client_certificate"]["sha256"] == body["sha256"]

    wrong = admin_api.put(path, {"certificate": ours.pem, "key": "not a key"}, format="json")
    assert wrong.status_code == 400 and "not a private key in PEM form" in wrong.content.decode()

    assert admin_api.delete(path).status_code == 204
    assert admin_api.get(f"{URL}settings/").json()["client_certificate"] is None
    assert [change.detail.split(":")[0] for change in StaffChange.objects.order_by("id")] == [
        "client certificate for the archive", "client certificate for the archive removed"]


def test_an_integrator_sets_oauth_whose_secret_is_never_answered_and_turns_it_off(client, admin_api, organization):
    path = "/api/v1/archive/oauth/"
    admin_api.put(f"{URL}settings/", {"url": ARCHIVE}, format="json")

    response = admin_api.put(path, {"token_url": "https://sso.example.org/token", "client_id": "kidneyweb",
                                    "client_secret": "kc-secret", "scope": "dicom"}, format="json")

    assert response.status_code == 200, response.content
    assert openapi.mismatches(openapi.load(client), path, "put", response) == []
    assert response.json() == {"token_url": "https://sso.example.org/token", "client_id": "kidneyweb",
                               "scope": "dicom", "secret_set": True}
    assert "kc-secret" not in response.content.decode() and response["Cache-Control"] == "private, no-store"
    assert admin_api.get(f"{URL}settings/").json()["oauth"]["client_id"] == "kidneyweb"
    refused = admin_api.put(path, {"token_url": "https://sso.example.org/token", "client_id": "other"}, format="json")
    assert refused.status_code == 400 and "Enter the client's secret" in refused.content.decode()

    assert admin_api.delete(path).status_code == 204
    assert admin_api.get(f"{URL}settings/").json()["oauth"] is None


def test_a_password_this_servers_keys_do_not_open_is_still_said_to_be_kept(admin_api, organization, settings):
    admin_api.put(f"{URL}settings/", {"url": ARCHIVE, "username": "ai", "password": "s3cret"}, format="json")
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40  # a restore onto another server, say

    assert admin_api.get(f"{URL}settings/").json()["password_set"] is True


def test_an_erased_records_note_is_listed_with_its_erasure_and_no_scan(client, admin_api, organization, boss):
    from diagnosis import services

    Organization.objects.filter(pk=organization.pk).update(pacs_url=ARCHIVE)
    stored = _delivery(organization, status="delivered", attempts=1, response_status=200)
    patient = stored.scan.patient
    erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=patient.mrn)

    listed = admin_api.get(URL)
    erasures = admin_api.get("/api/v1/erasures/")

    schema = openapi.load(client)
    assert openapi.mismatches(schema, "/api/v1/archive/", "get", listed) == []
    (note,) = listed.json()["results"]  # the capture went with the scan
    assert (note["kind"], note["scan"], note["erasure"], note["rejected_instance_uids"], note["status"]) == (
        "rejection", None, erasure.pk, [stored.sop_instance_uid], "pending")
    assert "asked to delete them" in note["description"]
    assert openapi.mismatches(schema, "/api/v1/erasures/", "get", erasures) == []
    assert erasures.json()["results"][0]["archive_notes"] == {"total": 1, "stored": 0, "failed": 0, "results": 1,
                                                              "given_up_at": None, "given_up_by": ""}
