"""POST /api/v1/patients/{id}/exports/ and GET /api/v1/record-exports/{id}/(download/): a hospital system asks for a
patient's whole record, polls it while the worker builds it and downloads the ZIP, as the schema says; clinicians
and other organizations are refused, and a download before it is ready or after its time says why."""

import datetime
import io
import zipfile

import pytest
from django.utils import timezone

from diagnosis import services
from diagnosis.models import Membership, PatientAccess, RecordExport

from . import openapi
from .factories import MembershipFactory, PatientFactory, ScanFactory, token_client

ASK = "/api/v1/patients/{id}/exports/"
EXPORT = "/api/v1/record-exports/{id}/"
DOWNLOAD = "/api/v1/record-exports/{id}/download/"


@pytest.fixture
def patient(organization, clinician):
    patient = PatientFactory(organization=organization, mrn="QX-11")
    ScanFactory(patient=patient, uploaded_by=clinician)
    ScanFactory(patient=patient, uploaded_by=clinician)
    return patient


def test_an_administrators_system_asks_polls_and_downloads_the_record(client, boss, patient,
                                                                       django_capture_on_commit_callbacks):
    api = token_client(boss)
    schema = openapi.load(client)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        asked = api.post(ASK.format(id=patient.pk))

    assert asked.status_code == 202 and openapi.mismatches(schema, ASK, "post", asked) == []
    body = asked.json()
    assert (body["patient"], body["status"], body["requested_by"], body["download_url"]) == (
        patient.pk, "queued", "boss", None)
    assert body["url"] == EXPORT.format(id=body["id"]) and len(queued) == 1
    assert api.post(ASK.format(id=patient.pk)).json()["id"] == body["id"]  # the same, while it is built
    early = api.get(DOWNLOAD.format(id=body["id"]), HTTP_ACCEPT="application/zip")
    assert early.status_code == 409 and "still being built" in early.json()["detail"]

    services.record_export_build(export_id=body["id"])
    polled = api.get(body["url"])

    assert polled.status_code == 200 and openapi.mismatches(schema, EXPORT, "get", polled) == []
    ready = polled.json()
    assert (ready["status"], ready["scans"], ready["download_url"]) == ("done", 2, DOWNLOAD.format(id=body["id"]))
    assert ready["size"] > 0 and ready["expires_at"] is not None
    response = api.get(ready["download_url"], HTTP_ACCEPT="application/zip")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert openapi.mismatches(schema, DOWNLOAD, "get", response) == []
    content = b"".join(response.streaming_content)
    assert len(content) == ready["size"]
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None and "patient.json" in archive.namelist()
    assert PatientAccess.objects.filter(patient=patient, what="export", channel="api").count() == 1


def test_clinicians_and_other_organizations_get_no_export(boss, api_client, patient, other_organization):
    refused = api_client.post(ASK.format(id=patient.pk))
    assert refused.status_code == 403 and "export a patient's whole record" in refused.json()["detail"]
    export = services.record_export_request(patient=patient, user=boss, base_url="http://testserver/")
    services.record_export_build(export_id=export.pk)
    assert api_client.get(EXPORT.format(id=export.pk)).status_code == 403
    other = token_client(MembershipFactory(organization=other_organization, role=Membership.Role.ADMIN).user)
    assert other.post(ASK.format(id=patient.pk)).status_code == 404
    assert other.get(EXPORT.format(id=export.pk)).status_code == 404
    assert other.get(DOWNLOAD.format(id=export.pk)).status_code == 404
    assert token_client(boss).get(EXPORT.format(id="latest")).status_code == 404  # an id is a number
    assert not PatientAccess.objects.filter(what="export").exists()


def test_a_download_after_its_time_answers_410_with_why(client, boss, patient, settings):
    export = services.record_export_request(patient=patient, user=boss, base_url="http://testserver/")
    services.record_export_build(export_id=export.pk)
    later = timezone.now() + datetime.timedelta(hours=settings.KIDNEYWEB_RECORD_EXPORT_KEEP_HOURS, seconds=1)
    services.record_exports_sweep(now=later)
    api = token_client(boss)

    gone = api.get(DOWNLOAD.format(id=export.pk), HTTP_ACCEPT="application/zip")
    polled = api.get(EXPORT.format(id=export.pk)).json()

    assert gone.status_code == 410 and "ask for a new one" in gone.json()["detail"]
    assert (polled["status"], polled["download_url"]) == ("expired", None)
    assert RecordExport.objects.get(pk=export.pk).file.name == ""
