"""GET /api/v1/patients/{id}/export/: an administrator's system fetches a patient's whole record as a ZIP, as the
schema says; clinicians, other organizations and erased records are refused."""

import io
import zipfile

import pytest

from diagnosis import services
from diagnosis.models import Membership, PatientAccess

from . import openapi
from .factories import MembershipFactory, PatientFactory, ScanFactory, token_client

EXPORT = "/api/v1/patients/{id}/export/"


@pytest.fixture
def patient(organization, clinician):
    patient = PatientFactory(organization=organization, mrn="QX-9")
    ScanFactory(patient=patient, uploaded_by=clinician)
    return patient


@pytest.mark.parametrize("accept", ["application/zip", "*/*"])
def test_an_administrator_fetches_the_record_as_a_zip(client, boss, patient, accept):
    response = token_client(boss).get(EXPORT.format(id=patient.pk), HTTP_ACCEPT=accept)

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert openapi.mismatches(openapi.load(client), EXPORT, "get", response) == []
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert "patient.json" in archive.namelist() and archive.testzip() is None
    assert PatientAccess.objects.filter(patient=patient, what="export", channel="api").count() == 1


def test_clinicians_other_organizations_and_erased_records_get_no_export(client, boss, api_client, patient,
                                                                         other_organization):
    refused = api_client.get(EXPORT.format(id=patient.pk))
    assert refused.status_code == 403 and "export a patient's whole record" in refused.json()["detail"]
    other = token_client(MembershipFactory(organization=other_organization, role=Membership.Role.ADMIN).user)
    assert other.get(EXPORT.format(id=patient.pk)).status_code == 404

    services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn="QX-9")

    assert token_client(boss).get(EXPORT.format(id=patient.pk)).status_code == 410
    assert not PatientAccess.objects.filter(what="export").exists()


def test_a_record_too_large_for_one_request_is_refused_with_where_to_ask(client, boss, patient, monkeypatch):
    from diagnosis import record_export

    monkeypatch.setattr(record_export, "MAX_DIRECT_SCANS", 0)

    response = token_client(boss).get(EXPORT.format(id=patient.pk), HTTP_ACCEPT="application/zip")

    assert response.status_code == 409
    assert f"POST /api/v1/patients/{patient.pk}/exports/" in response.json()["detail"]
    assert not PatientAccess.objects.filter(what="export").exists()
