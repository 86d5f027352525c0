from rest_framework.test import APIClient

from diagnosis.models import Patient

from . import openapi
from .factories import PatientFactory, UserFactory, token_client

URL = "/api/v1/patients/"
NEW_PATIENT = {"mrn": "H-1", "name": "Ada Lovelace", "birth_date": "1960-12-10", "sex": "F"}


def test_anonymous_requests_get_401_with_a_token_challenge(db):
    response = APIClient().get(URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_gets_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    assert client.get(URL).status_code == 401


def test_a_user_without_an_organization_gets_403(db):
    response = token_client(UserFactory()).get(URL)

    assert response.status_code == 403
    assert "organization" in response.json()["detail"]


def test_list_contains_only_the_own_organizations_patients(api_client, organization, other_organization):
    mine = PatientFactory(organization=organization)
    PatientFactory(organization=other_organization)

    body = api_client.get(URL).json()

    assert body["count"] == 1
    assert [p["id"] for p in body["results"]] == [mine.pk]
    assert set(body["results"][0]) == {"id", "mrn", "name", "birth_date", "sex", "created_at", "merged_into",
                                       "training_opt_out"}


def test_list_searches_by_name_or_mrn(api_client, organization):
    PatientFactory(organization=organization, name="Ada Lovelace", mrn="A1")
    PatientFactory(organization=organization, name="Grace Hopper", mrn="G1")

    names = [p["name"] for p in api_client.get(URL, {"search": "hopp"}).json()["results"]]
    by_mrn = [p["name"] for p in api_client.get(URL, {"search": "a1"}).json()["results"]]

    assert names == ["Grace Hopper"] and by_mrn == ["Ada Lovelace"]


def test_a_hospital_system_finds_its_patient_by_the_whole_mrn(api_client, organization, other_organization):
    PatientFactory(organization=organization, name="Ada Lovelace", mrn="A1")
    PatientFactory(organization=organization, name="Ada Junior", mrn="A12")
    PatientFactory(organization=other_organization, name="Someone Else", mrn="B7")

    def found(mrn):
        return [p["name"] for p in api_client.get(URL, {"mrn": mrn}).json()["results"]]

    assert found("A1") == found(" A1 ") == ["Ada Lovelace"]
    assert found("a1") == [] and found("A") == []
    assert found("B7") == []  # another organization's patient stays invisible
    assert found("A1\x00") == []


def test_a_search_with_a_nul_character_answers_an_empty_list(api_client, organization):
    PatientFactory(organization=organization, name="Ada Lovelace", mrn="A1")

    response = api_client.get(URL, {"search": "Ada\x00"})

    assert response.status_code == 200 and response.json()["results"] == []


def test_list_is_paginated_by_50(api_client, organization):
    Patient.objects.bulk_create(
        Patient(organization=organization, mrn=f"M{i:03d}", name=f"P {i:03d}", birth_date="1970-01-01")
        for i in range(51)
    )

    first = api_client.get(URL).json()
    second = api_client.get(first["next"]).json()

    assert (first["count"], len(first["results"]), len(second["results"])) == (51, 50, 1)


def test_create_answers_201_with_the_id(api_client, organization):
    response = api_client.post(URL, NEW_PATIENT, format="json")

    assert response.status_code == 201
    patient = Patient.objects.get(pk=response.json()["id"])
    assert patient.organization == organization and patient.mrn == "H-1"


def test_registering_names_records_that_may_be_the_same_person(client, api_client, organization):
    earlier = PatientFactory(organization=organization, name="ADA LOVELACE", birth_date="1960-12-10")
    PatientFactory(organization=organization, name="Ada Lovelace", birth_date="1960-12-11")

    response = api_client.post(URL, NEW_PATIENT, format="json")

    assert response.status_code == 201 and response.json()["possible_duplicates"] == [earlier.pk]
    assert openapi.mismatches(openapi.load(client), URL, "post", response) == []
    assert api_client.post(URL, {**NEW_PATIENT, "mrn": "H-2", "name": "Bob Other"},
                           format="json").json()["possible_duplicates"] == []


def test_a_duplicate_mrn_answers_400_naming_the_field(api_client, organization):
    PatientFactory(organization=organization, mrn="H-1")

    response = api_client.post(URL, NEW_PATIENT, format="json")

    assert response.status_code == 400
    assert "already exists" in response.json()["mrn"][0]


def test_invalid_fields_answer_400_with_messages(api_client):
    response = api_client.post(URL, {"mrn": "", "name": "X", "birth_date": "not a date", "sex": "Q"}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"mrn", "birth_date", "sex"}
    assert not Patient.objects.exists()


def test_a_future_birth_date_answers_400(api_client):
    response = api_client.post(URL, {**NEW_PATIENT, "birth_date": "2999-01-01"}, format="json")

    assert response.status_code == 400 and "birth_date" in response.json()


def test_retrieve_returns_the_patient(api_client, organization):
    patient = PatientFactory(organization=organization)

    body = api_client.get(f"{URL}{patient.pk}/").json()

    assert (body["id"], body["mrn"]) == (patient.pk, patient.mrn)


def test_another_organizations_patient_is_404(api_client, other_organization):
    theirs = PatientFactory(organization=other_organization)

    assert api_client.get(f"{URL}{theirs.pk}/").status_code == 404


def test_session_authentication_works_for_the_browser(client, clinician, organization):
    PatientFactory(organization=organization)
    client.force_login(clinician)

    assert client.get(URL).json()["count"] == 1
