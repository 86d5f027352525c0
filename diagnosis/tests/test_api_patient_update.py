from diagnosis.models import Patient, PatientChange

from .factories import PatientFactory

URL = "/api/v1/patients/"


def test_patch_corrects_only_the_fields_sent(api_client, clinician, organization):
    patient = PatientFactory(organization=organization, mrn="H-1O", name="Ada Lovelace", sex="F")

    response = api_client.patch(f"{URL}{patient.pk}/", {"mrn": "H-10"}, format="json")

    assert response.status_code == 200
    assert (response.json()["mrn"], response.json()["name"]) == ("H-10", "Ada Lovelace")
    patient.refresh_from_db()
    assert (patient.mrn, patient.name, patient.sex) == ("H-10", "Ada Lovelace", "F")
    change = PatientChange.objects.get(patient=patient)
    assert (change.changed_by, change.before, change.after) == (clinician, {"mrn": "H-1O"}, {"mrn": "H-10"})


def test_put_replaces_all_details_and_needs_them_all(api_client, organization):
    patient = PatientFactory(organization=organization, mrn="H-1")

    incomplete = api_client.put(f"{URL}{patient.pk}/", {"name": "Only A Name"}, format="json")
    complete = api_client.put(f"{URL}{patient.pk}/", {"mrn": "H-2", "name": "Grace Hopper",
                                                      "birth_date": "1950-01-02", "sex": "F"}, format="json")

    assert incomplete.status_code == 400 and {"mrn", "birth_date"} <= set(incomplete.json())
    assert complete.status_code == 200
    assert Patient.objects.get(pk=patient.pk).name == "Grace Hopper"


def test_another_patients_mrn_answers_400_and_changes_nothing(api_client, organization):
    PatientFactory(organization=organization, mrn="H-2")
    patient = PatientFactory(organization=organization, mrn="H-1", name="Ada Lovelace")

    response = api_client.patch(f"{URL}{patient.pk}/", {"mrn": "H-2", "name": "Changed"}, format="json")

    assert response.status_code == 400 and "already exists" in response.json()["mrn"][0]
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.mrn, stored.name) == ("H-1", "Ada Lovelace")


def test_a_future_birth_date_answers_400(api_client, organization):
    patient = PatientFactory(organization=organization)

    response = api_client.patch(f"{URL}{patient.pk}/", {"birth_date": "2999-01-01"}, format="json")

    assert response.status_code == 400 and "birth_date" in response.json()


def test_another_organizations_patient_cannot_be_changed(api_client, other_organization):
    theirs = PatientFactory(organization=other_organization, name="Theirs")

    assert api_client.patch(f"{URL}{theirs.pk}/", {"name": "Mine"}, format="json").status_code == 404
    assert Patient.objects.get(pk=theirs.pk).name == "Theirs"


def test_if_match_with_the_etag_read_refuses_an_edit_after_another_change_with_412(api_client, organization):
    patient = PatientFactory(organization=organization, mrn="A1", name="Jane Q Doe")
    etag = api_client.get(f"{URL}{patient.pk}/")["ETag"]
    assert api_client.patch(f"{URL}{patient.pk}/", {"mrn": "A1-CORRECT"}, format="json").status_code == 200

    response = api_client.patch(f"{URL}{patient.pk}/", {"name": "Jane"}, format="json", HTTP_IF_MATCH=etag)

    assert response.status_code == 412
    assert "now MRN A1-CORRECT" in response.json()["detail"] and response["ETag"] != etag
    assert Patient.objects.get(pk=patient.pk).name == "Jane Q Doe"
    ok = api_client.patch(f"{URL}{patient.pk}/", {"name": "Jane"}, format="json", HTTP_IF_MATCH=response["ETag"])
    assert ok.status_code == 200 and ok.json()["name"] == "Jane" and ok["ETag"] != response["ETag"]


def test_put_without_sex_keeps_the_stored_one(api_client, organization):
    patient = PatientFactory(organization=organization, sex="F")

    response = api_client.put(f"{URL}{patient.pk}/", {"mrn": patient.mrn, "name": "Corrected Name",
                                                      "birth_date": patient.birth_date.isoformat()}, format="json")

    assert response.status_code == 200 and response.json()["sex"] == "F"
    assert Patient.objects.get(pk=patient.pk).sex == "F"


def test_the_schema_declares_if_match_the_etag_and_412_for_put_and_patch(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    item = schema["paths"]["/api/v1/patients/{id}/"]

    for method in ("put", "patch"):
        assert "If-Match" in [p["name"] for p in item[method]["parameters"]]
        assert "412" in item[method]["responses"] and "ETag" in item[method]["responses"]["200"]["headers"]
    assert "ETag" in item["get"]["responses"]["200"]["headers"]
