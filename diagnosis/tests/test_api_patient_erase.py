"""POST /api/v1/patients/{id}/erase/ and GET /api/v1/erasures/: an administrator's system erases a record for good,
as the schema says; the former record answers 410 with when, by whom and why, and the access log keeps its
entries naming the erasure."""

import pytest

from diagnosis.models import Membership, Patient, PatientErasure, Scan

from . import openapi
from .factories import MembershipFactory, PatientFactory, ScanFactory, token_client

ERASE = "/api/v1/patients/{id}/erase/"


@pytest.fixture
def patient(organization, clinician):
    patient = PatientFactory(organization=organization, mrn="QX-1", name="Zebedee Quartermain")
    ScanFactory(patient=patient, uploaded_by=clinician)
    return patient


def test_an_administrator_erases_a_record_and_it_answers_410_from_then_on(client, boss, api_client, patient):
    api = token_client(boss)
    assert api_client.get(f"/api/v1/patients/{patient.pk}/").status_code == 200

    response = api.post(ERASE.format(id=patient.pk), {"reason": "consent withdrawn", "mrn": "QX-1"}, format="json")

    assert response.status_code == 200, response.json()
    schema = openapi.load(client)
    assert openapi.mismatches(schema, ERASE, "post", response) == []
    body = response.json()
    assert (body["patient"], body["merged"], body["scans"], body["erased_by"], body["reason"]) == (
        patient.pk, [], 1, "boss", "consent withdrawn")
    assert body["files_removed"] is False  # the worker deletes the images once the erasure is committed
    gone = api_client.get(f"/api/v1/patients/{patient.pk}/")
    assert gone.status_code == 410 and openapi.mismatches(schema, "/api/v1/patients/{id}/", "get", gone) == []
    assert "was erased on" in gone.json()["detail"] and "by boss: consent withdrawn" in gone.json()["detail"]
    assert api_client.get("/api/v1/patients/", {"mrn": "QX-1"}).json()["results"] == []
    assert api_client.get("/api/v1/patients/999999/").status_code == 404

    erasures = api.get("/api/v1/erasures/")
    assert erasures.status_code == 200 and [e["id"] for e in erasures.json()["results"]] == [body["id"]]
    assert openapi.mismatches(schema, "/api/v1/erasures/", "get", erasures) == []
    assert "Quartermain" not in erasures.content.decode() and "QX-1" not in erasures.content.decode()


def test_the_access_log_keeps_the_erased_records_entries_naming_the_erasure(client, boss, api_client, patient):
    api_client.get(f"/api/v1/patients/{patient.pk}/")
    api = token_client(boss)
    erasure_id = api.post(ERASE.format(id=patient.pk), {"reason": "end of the pilot", "mrn": "QX-1"},
                          format="json").json()["id"]

    log = api.get("/api/v1/accesses/")

    assert log.status_code == 200 and openapi.mismatches(openapi.load(client), "/api/v1/accesses/", "get", log) == []
    [entry] = log.json()["results"]
    assert (entry["user"], entry["patient"], entry["patient_mrn"], entry["erasure"], entry["what"]) == (
        "alice", None, None, erasure_id, "patient")


def test_a_clinician_cannot_erase_or_list_erasures_and_a_wrong_mrn_erases_nothing(client, boss, api_client, patient):
    refused = api_client.post(ERASE.format(id=patient.pk), {"reason": "consent withdrawn", "mrn": "QX-1"},
                              format="json")
    assert refused.status_code == 403 and "Only administrators" in refused.json()["detail"]
    assert api_client.get("/api/v1/erasures/").status_code == 403

    wrong = token_client(boss).post(ERASE.format(id=patient.pk), {"reason": "consent withdrawn", "mrn": "QX-2"},
                                    format="json")
    assert wrong.status_code == 400 and list(wrong.json()) == ["mrn"]
    assert openapi.mismatches(openapi.load(client), ERASE, "post", wrong) == []
    missing = token_client(boss).post(ERASE.format(id=patient.pk), {"mrn": "QX-1"}, format="json")
    assert missing.status_code == 400 and list(missing.json()) == ["reason"]

    assert Patient.objects.get() == patient and Scan.objects.count() == 1 and not PatientErasure.objects.exists()


def test_another_organization_neither_erases_nor_learns_of_the_erasure(boss, other_organization, patient):
    other = token_client(MembershipFactory(organization=other_organization, role=Membership.Role.ADMIN).user)
    refused = other.post(ERASE.format(id=patient.pk), {"reason": "consent withdrawn", "mrn": "QX-1"}, format="json")
    assert refused.status_code == 404 and Patient.objects.filter(pk=patient.pk).exists()

    token_client(boss).post(ERASE.format(id=patient.pk), {"reason": "consent withdrawn", "mrn": "QX-1"}, format="json")

    assert other.get(f"/api/v1/patients/{patient.pk}/").status_code == 404
