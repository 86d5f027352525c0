"""GET /api/v1/patients/{id}/studies/: the patient's DICOM studies summed up as on the patient's page, for a hospital
system that shows the AI's reading per study (by accession number) rather than per slice."""

import datetime

from diagnosis.models import PatientAccess

from . import openapi
from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ReviewFactory, ScanFactory

STUDY = "1.2.826.0.1.3680043.8.498.91"


def test_a_patients_studies_come_with_their_counts_and_the_slice_to_look_at_first(client, api_client, organization):
    patient = PatientFactory(organization=organization)
    study = {"patient": patient, "dicom_study_uid": STUDY, "dicom_accession_number": "A-91",
             "dicom_study_date": datetime.date(2026, 12, 5), "dicom_study_time": datetime.time(9, 30),
             "dicom_study_description": "CT KUB"}
    tumour = DonePredictionFactory(scan=ScanFactory(**study), label="Tumor", top=0.92)
    ReviewFactory(prediction=DonePredictionFactory(scan=ScanFactory(**study), label="Normal", top=0.97),
                  label="Normal")
    PredictionFactory(scan=ScanFactory(**study))  # queued
    DonePredictionFactory(scan=ScanFactory(patient=patient), label="Stone")  # a PNG upload: in no study

    response = api_client.get(f"/api/v1/patients/{patient.pk}/studies/")

    assert response.status_code == 200, response.content
    assert openapi.mismatches(openapi.load(client), "/api/v1/patients/{id}/studies/", "get", response) == []
    [body] = response.json()
    assert body | {"first_uploaded": None} == {
        "study_uid": STUDY, "accession_number": "A-91", "study_date": "2026-12-05", "study_time": "09:30:00",
        "description": "CT KUB", "first_uploaded": None, "slices": 3, "ai_labels": {"Tumor": 1, "Normal": 1},
        "needs_review": 0, "in_progress": 1, "reviewed": 1, "review_labels": {"Normal": 1},
        "look_first": {"scan": tumour.scan.pk, "url": f"http://testserver/api/v1/scans/{tumour.scan.pk}/",
                       "label": "Tumor", "confidence": 0.92},
    }
    assert list(body["ai_labels"]) == ["Tumor", "Normal"]  # most serious first
    assert PatientAccess.objects.filter(patient=patient, what=PatientAccess.What.PATIENT,
                                        channel=PatientAccess.Channel.API).exists()


def test_a_patient_without_dicom_studies_has_none_and_another_organizations_patient_is_404(
        api_client, organization, other_organization):
    patient = PatientFactory(organization=organization)
    DonePredictionFactory(scan=ScanFactory(patient=patient))
    theirs = PatientFactory(organization=other_organization)

    assert api_client.get(f"/api/v1/patients/{patient.pk}/studies/").json() == []
    assert api_client.get(f"/api/v1/patients/{theirs.pk}/studies/").status_code == 404
