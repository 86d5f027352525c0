"""The API's answers match the OpenAPI schema it publishes: every status it answers is documented, and
every JSON body has the documented shape (null only where the schema allows it)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from . import openapi
from .factories import (DonePredictionFactory, PatientFactory, PredictionFactory, ReviewFactory, ScanFactory,
                        image_bytes, token_client)


@pytest.fixture
def schema(client):
    return openapi.load(client)


def test_clinician_endpoints_answer_as_documented(schema, organization, clinician, active_model_version):
    api = token_client(clinician)
    patient = PatientFactory(organization=organization)
    done = DonePredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician), model_version=active_model_version)
    PredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician), model_version=active_model_version,
                      status="failed", failure_reason="The worker ran out of memory")
    reviewed = DonePredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician),
                                     model_version=active_model_version)
    ReviewFactory(prediction=reviewed, reviewed_by=clinician)
    calls = [
        ("get", "/api/v1/patients/", "/api/v1/patients/", {}),
        ("get", "/api/v1/patients/{id}/", f"/api/v1/patients/{patient.pk}/", {}),
        ("post", "/api/v1/patients/", "/api/v1/patients/",
         {"data": {"mrn": "Z1", "name": "Zed", "birth_date": "2000-01-01"}, "format": "json"}),
        ("patch", "/api/v1/patients/{id}/", f"/api/v1/patients/{patient.pk}/", {"data": {"name": "Q"}, "format": "json"}),
        ("patch", "/api/v1/patients/{id}/", f"/api/v1/patients/{patient.pk}/",
         {"data": {"name": "R"}, "format": "json", "HTTP_IF_MATCH": '"stale"'}),
        ("get", "/api/v1/scans/", "/api/v1/scans/", {}),
        ("get", "/api/v1/scans/{id}/", f"/api/v1/scans/{done.scan.pk}/", {}),
        ("get", "/api/v1/scans/{id}/", f"/api/v1/scans/{reviewed.scan.pk}/", {}),
        ("post", "/api/v1/scans/", "/api/v1/scans/",
         {"data": {"patient": patient.pk, "image": SimpleUploadedFile("a.png", image_bytes(seed=99))}, "format": "multipart"}),
        ("post", "/api/v1/scans/", "/api/v1/scans/",
         {"data": {"patient": patient.pk, "image": SimpleUploadedFile("a.png", image_bytes(seed=99))}, "format": "multipart"}),
        ("post", "/api/v1/scans/{id}/predict/", f"/api/v1/scans/{done.scan.pk}/predict/", {}),
        ("post", "/api/v1/scans/{id}/predict/", f"/api/v1/scans/{done.scan.pk}/predict/", {}),
        ("post", "/api/v1/scans/{id}/review/", f"/api/v1/scans/{reviewed.scan.pk}/review/",
         {"data": {"label": "Tumor"}, "format": "json"}),
        ("get", "/api/v1/worklist/", "/api/v1/worklist/", {}),
        ("get", "/api/v1/model-versions/", "/api/v1/model-versions/", {}),
        ("get", "/api/v1/model-versions/{id}/", f"/api/v1/model-versions/{active_model_version.pk}/", {}),
    ]
    problems = []
    for method, path, url, kwargs in calls:
        problems += openapi.mismatches(schema, path, method, getattr(api, method)(url, **kwargs))
    assert problems == []
