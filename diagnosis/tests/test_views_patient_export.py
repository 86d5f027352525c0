"""An administrator downloads a patient's whole record (a subject access request) from the patient's page: one ZIP
with the details, corrections, who opened the record, and per scan the slice as stored, the heat map, the PDF
report, every result and review and a FHIR Bundle; withdrawn scans are left out, and the export is logged."""

import io
import json
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from diagnosis import services
from diagnosis.models import PatientAccess

from .factories import DonePredictionFactory, PatientFactory, ReviewFactory, ScanFactory


@pytest.fixture
def record(organization, clinician, boss):
    patient = PatientFactory(organization=organization, name="Zebedee Quartermain", mrn="QX-7")
    scan = ScanFactory(patient=patient, uploaded_by=clinician)
    prediction = DonePredictionFactory(scan=scan, label="Stone")
    prediction.heatmap.save("heat.png", ContentFile(b"\x89PNG heat"), save=True)
    ReviewFactory(prediction=prediction, label="Cyst", comment="cyst on the upper pole", reviewed_by=clinician)
    wrong = ScanFactory(patient=patient, uploaded_by=clinician)
    services.scan_withdraw(scan=wrong, user=clinician, reason="uploaded for the wrong patient")
    services.patient_update(patient=patient, changed_by=clinician, name="Zebedee Quartermaine")
    services.patient_access_record(user=clinician, patient=patient, what=PatientAccess.What.PATIENT,
                                   channel=PatientAccess.Channel.WEB)
    return {"patient": patient, "scan": scan, "prediction": prediction, "wrong": wrong}


def _zip(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_an_administrator_downloads_the_whole_record_and_the_export_is_logged(client, boss, record):
    client.force_login(boss)
    patient, scan = record["patient"], record["scan"]
    assert "Download the record (ZIP)" in client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    response = client.get(reverse("diagnosis:patient_export", args=[patient.pk]))

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert f'filename="kidneyweb-record-{patient.pk}-' in response["Content-Disposition"]
    assert response["Cache-Control"] == "private, no-store"
    archive = _zip(response)
    folder = f"scans/{scan.pk}"
    assert sorted(archive.namelist()) == sorted([
        "README.txt", "patient.json", "access-log.csv", f"{folder}/scan.json", f"{folder}/slice.png",
        f"{folder}/heatmap.png", f"{folder}/report.pdf", f"{folder}/result.fhir.json"])
    details = json.loads(archive.read("patient.json"))
    assert (details["mrn"], details["name"]) == ("QX-7", "Zebedee Quartermaine")
    assert details["corrections"][0]["before"] == {"name": "Zebedee Quartermain"}
    with scan.image.open("rb") as stored:
        assert archive.read(f"{folder}/slice.png") == stored.read()
    assert archive.read(f"{folder}/heatmap.png") == b"\x89PNG heat"
    assert archive.read(f"{folder}/report.pdf").startswith(b"%PDF")
    assert json.loads(archive.read(f"{folder}/result.fhir.json"))["resourceType"] == "Bundle"
    described = json.loads(archive.read(f"{folder}/scan.json"))
    assert [r["label"] for r in described["results"]] == ["Stone"]
    assert [(r["label"], r["comment"]) for r in described["reviews"]] == [("Cyst", "cyst on the upper pole")]
    assert "alice" in archive.read("access-log.csv").decode()
    readme = archive.read("README.txt").decode()
    assert "1 scan(s)." in readme and "1 scan(s) withdrawn as entered in error are left out" in readme
    assert not any(str(record["wrong"].pk) in name for name in archive.namelist())
    assert PatientAccess.objects.filter(patient=patient, user=boss, what="export", channel="web").count() == 1


def test_a_lost_image_is_named_in_the_readme_and_the_rest_is_exported(client, boss, record):
    client.force_login(boss)
    record["scan"].image.storage.delete(record["scan"].image.name)

    archive = _zip(client.get(reverse("diagnosis:patient_export", args=[record["patient"].pk])))

    assert "1 stored image(s) could not be read" in archive.read("README.txt").decode()
    assert f"scans/{record['scan'].pk}/report.pdf" in archive.namelist()


def test_clinicians_cannot_export_a_whole_record(client, clinician, record):
    client.force_login(clinician)

    assert "Download the record" not in client.get(
        reverse("diagnosis:patient_detail", args=[record["patient"].pk])).content.decode()
    assert client.get(reverse("diagnosis:patient_export", args=[record["patient"].pk])).status_code == 403
    assert not PatientAccess.objects.filter(what="export").exists()


def test_the_access_log_in_the_export_cannot_smuggle_a_spreadsheet_formula(client, boss, clinician, record):
    clinician.first_name = '=HYPERLINK("http://evil.example","x")'
    clinician.save()
    client.force_login(boss)

    log = _zip(client.get(reverse("diagnosis:patient_export", args=[record["patient"].pk]))).read("access-log.csv")

    assert "'=HYPERLINK" in log.decode() and ',"=HYPERLINK' not in log.decode()
