"""POST /api/v1/patients/{id}/training-use/: a hospital system records that a patient refused (or allows again)
that their slices train the model, as the schema says; the patient's record shows it."""

from diagnosis.models import PatientChange

from . import openapi
from .factories import PatientFactory

TRAINING_USE = "/api/v1/patients/{id}/training-use/"


def test_a_refusal_is_recorded_and_shown_on_the_record(client, api_client, organization):
    patient = PatientFactory(organization=organization)

    response = api_client.post(TRAINING_USE.format(id=patient.pk), {"allowed": False}, format="json")

    assert response.status_code == 200 and response.json()["training_opt_out"] is True
    schema = openapi.load(client)
    assert openapi.mismatches(schema, TRAINING_USE, "post", response) == []
    shown = api_client.get(f"/api/v1/patients/{patient.pk}/")
    assert shown.json()["training_opt_out"] is True
    assert openapi.mismatches(schema, "/api/v1/patients/{id}/", "get", shown) == []
    assert PatientChange.objects.get(patient=patient).after == {"training_opt_out": True}


def test_a_missing_answer_is_refused_and_nothing_changes(api_client, organization):
    patient = PatientFactory(organization=organization)

    response = api_client.post(TRAINING_USE.format(id=patient.pk), {}, format="json")

    assert response.status_code == 400 and list(response.json()) == ["allowed"]
    patient.refresh_from_db()
    assert not patient.training_opt_out and not PatientChange.objects.exists()
