"""POST /api/v1/patients/{id}/merge/ and /unmerge/: an administrator's system merges a person's duplicate record
into the record that stays, and undoes it, as the schema says; a lookup by the retired MRN names where it went."""

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from diagnosis.models import Scan

from . import openapi
from .factories import PatientFactory, ScanFactory, image_bytes, token_client

MERGE = "/api/v1/patients/{id}/merge/"
UNMERGE = "/api/v1/patients/{id}/unmerge/"
BORN = datetime.date(1970, 6, 1)


@pytest.fixture
def kept(organization):
    return PatientFactory(organization=organization, mrn="K-1", birth_date=BORN)


@pytest.fixture
def duplicate(organization, clinician):
    patient = PatientFactory(organization=organization, mrn="TMP-1", birth_date=BORN)
    ScanFactory(patient=patient, uploaded_by=clinician)
    return patient


def test_merging_answers_the_merge_and_the_retired_mrn_names_the_record_that_stays(client, boss, kept, duplicate):
    api = token_client(boss)
    scan = Scan.objects.get()

    response = api.post(MERGE.format(id=duplicate.pk), {"into": kept.pk, "reason": "registered twice"}, format="json")

    assert response.status_code == 201, response.json()
    assert openapi.mismatches(openapi.load(client), MERGE, "post", response) == []
    body = response.json()
    assert body["duplicate"] == duplicate.pk and body["into"] == kept.pk and body["scans"] == [scan.pk]
    assert body["merged_by"] == "boss" and body["undone_at"] is None and body["undone_by"] is None
    assert api.get(f"/api/v1/scans/{scan.pk}/").json()["patient"] == kept.pk
    [found] = api.get("/api/v1/patients/", {"mrn": "TMP-1"}).json()["results"]
    assert found["merged_into"] == kept.pk
    assert [p["id"] for p in api.get("/api/v1/patients/").json()["results"]] == [kept.pk]
    merges = api.get(f"/api/v1/patients/{kept.pk}/merges/")
    assert [m["id"] for m in merges.json()["results"]] == [body["id"]]
    assert openapi.mismatches(openapi.load(client), "/api/v1/patients/{id}/merges/", "get", merges) == []


def test_a_merged_record_refuses_uploads_and_corrections_with_where_it_went(api_client, boss, kept, duplicate,
                                                                           active_model_version):
    token_client(boss).post(MERGE.format(id=duplicate.pk), {"into": kept.pk, "reason": "twice"}, format="json")

    upload = api_client.post("/api/v1/scans/", {"patient": duplicate.pk,
                                                 "image": SimpleUploadedFile("a.png", image_bytes(seed=3))})
    assert upload.status_code == 400 and "(MRN K-1)" in str(upload.json()["patient"])
    patch = api_client.patch(f"/api/v1/patients/{duplicate.pk}/", {"name": "New Name"}, format="json")
    assert patch.status_code == 400 and "Correct the details there" in str(patch.json())
    assert Scan.objects.count() == 1


def test_refusals_say_why_and_change_nothing(client, api_client, boss, kept, duplicate, other_organization):
    api = token_client(boss)
    kept.birth_date = datetime.date(1970, 6, 2)
    kept.save()

    clinician = api_client.post(MERGE.format(id=duplicate.pk), {"into": kept.pk, "reason": "x"}, format="json")
    assert clinician.status_code == 403 and "Only administrators" in clinician.json()["detail"]
    two_people = api.post(MERGE.format(id=duplicate.pk), {"into": kept.pk, "reason": "x"}, format="json")
    assert two_people.status_code == 400 and "different birth dates" in str(two_people.json()["into"])
    outsider = PatientFactory(organization=other_organization, birth_date=BORN)
    elsewhere = api.post(MERGE.format(id=duplicate.pk), {"into": outsider.pk, "reason": "x"}, format="json")
    assert elsewhere.json() == {"into": [f"No patient with id {outsider.pk} in your organization."]}
    not_merged = api.post(UNMERGE.format(id=duplicate.pk), {"reason": "x"}, format="json")
    assert not_merged.status_code == 400 and "not merged" in str(not_merged.json())
    for path, refused in ((MERGE, clinician), (MERGE, two_people), (MERGE, elsewhere), (UNMERGE, not_merged)):
        assert openapi.mismatches(openapi.load(client), path, "post", refused) == []
    assert Scan.objects.get().patient == duplicate


def test_undoing_a_merge_answers_it_with_who_undid_it(client, boss, kept, duplicate):
    api = token_client(boss)
    api.post(MERGE.format(id=duplicate.pk), {"into": kept.pk, "reason": "twice"}, format="json")

    response = api.post(UNMERGE.format(id=duplicate.pk), {"reason": "two people"}, format="json")

    assert response.status_code == 200, response.json()
    assert openapi.mismatches(openapi.load(client), UNMERGE, "post", response) == []
    assert response.json()["undone_by"] == "boss" and response.json()["undo_reason"] == "two people"
    assert Scan.objects.get().patient == duplicate
    assert api.get(f"/api/v1/patients/{duplicate.pk}/").json()["merged_into"] is None
