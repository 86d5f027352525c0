"""An administrator asks for a patient's whole record (a subject access request) on the patient's page; the worker
builds it and its page says when it is ready: one ZIP with the details, corrections, who opened the record, and per
scan the slice as stored, the heat map, the PDF report, every result and review and a FHIR Bundle; withdrawn scans
are left out, each download is logged, and the file is deleted after its time."""

import datetime
import io
import json
import os
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from diagnosis import record_export, services
from diagnosis.models import PatientAccess, RecordExport

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
    assert response.status_code == 200, response.content
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def _ask(client, patient) -> RecordExport:
    asked = client.post(reverse("diagnosis:patient_export", args=[patient.pk]))
    export = RecordExport.objects.filter(patient=patient).latest("id")
    assert asked.status_code == 302
    assert asked["Location"] == reverse("diagnosis:record_export", args=[patient.pk, export.pk])
    return export


def _download(client, export):
    return client.get(reverse("diagnosis:record_export_download", args=[export.patient_id, export.pk]))


def _export(client, patient):
    """Ask for the record, build it as the worker does, and download it."""
    export = _ask(client, patient)
    services.record_export_build(export_id=export.pk)
    return _download(client, export)


def test_an_administrator_downloads_the_whole_record_and_the_export_is_logged(client, boss, record):
    client.force_login(boss)
    patient, scan = record["patient"], record["scan"]
    assert "Prepare the record (ZIP)" in client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    export = _ask(client, patient)
    page = client.get(reverse("diagnosis:record_export", args=[patient.pk, export.pk])).content.decode()
    status_url = reverse("diagnosis:record_export_status", args=[patient.pk, export.pk])
    assert "Queued" in page and f'data-status-url="{status_url}"' in page and "export-download" not in page
    assert client.get(status_url).json()["status"] == "queued"
    assert _download(client, export).status_code == 409  # not built yet
    assert not PatientAccess.objects.filter(what="export").exists()
    built = services.record_export_build(export_id=export.pk)
    state = client.get(status_url).json()
    assert built.status == "done" and state["status"] == "done" and "Download the record (ZIP)" in state["html"]
    listed = client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert f'href="{reverse("diagnosis:record_export", args=[patient.pk, export.pk])}"' in listed

    response = _download(client, export)

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert f'filename="kidneyweb-record-{patient.pk}-' in response["Content-Disposition"]
    assert response["Cache-Control"] == "private, no-store"
    archive = _zip(response)
    folder = f"scans/{scan.pk}"
    assert sorted(archive.namelist()) == sorted([
        "README.txt", "patient.json", "access-log.csv", f"{folder}/scan.json", f"{folder}/slice.png",
        f"{folder}/heatmap.png", f"{folder}/report.pdf", f"{folder}/result.fhir.json", f"{folder}/result.hl7"])
    details = json.loads(archive.read("patient.json"))
    assert (details["mrn"], details["name"]) == ("QX-7", "Zebedee Quartermaine")
    assert details["corrections"][0]["before"] == {"name": "Zebedee Quartermain"}
    with scan.image.open("rb") as stored:
        assert archive.read(f"{folder}/slice.png") == stored.read()
    assert archive.read(f"{folder}/heatmap.png") == b"\x89PNG heat"
    assert archive.read(f"{folder}/report.pdf").startswith(b"%PDF")
    assert json.loads(archive.read(f"{folder}/result.fhir.json"))["resourceType"] == "Bundle"
    assert archive.read(f"{folder}/result.hl7").startswith(b"MSH|^~\\&|KIDNEYWEB|")
    assert b"\rPID|1||QX-7^" in archive.read(f"{folder}/result.hl7")
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

    archive = _zip(_export(client, record["patient"]))

    assert "1 stored image(s) could not be read" in archive.read("README.txt").decode()
    assert f"scans/{record['scan'].pk}/report.pdf" in archive.namelist()


def test_clinicians_cannot_export_a_whole_record(client, clinician, record):
    client.force_login(clinician)

    assert "Prepare the record" not in client.get(
        reverse("diagnosis:patient_detail", args=[record["patient"].pk])).content.decode()
    assert client.post(reverse("diagnosis:patient_export", args=[record["patient"].pk])).status_code == 403
    assert not RecordExport.objects.exists() and not PatientAccess.objects.filter(what="export").exists()


def test_the_access_log_in_the_export_cannot_smuggle_a_spreadsheet_formula(client, boss, clinician, record):
    clinician.first_name = '=HYPERLINK("http://evil.example","x")'
    clinician.save()
    client.force_login(boss)

    log = _zip(_export(client, record["patient"])).read("access-log.csv")

    assert "'=HYPERLINK" in log.decode() and ',"=HYPERLINK' not in log.decode()


def test_asking_twice_while_it_is_built_gives_the_same_export(client, boss, record):
    client.force_login(boss)

    first, second = _ask(client, record["patient"]), _ask(client, record["patient"])

    assert first == second and RecordExport.objects.count() == 1
    services.record_export_build(export_id=first.pk)
    assert _ask(client, record["patient"]) != first  # built: a new request is a new export


def test_the_file_is_deleted_after_its_time_and_its_page_says_so(client, boss, record, settings):
    client.force_login(boss)
    export = _ask(client, record["patient"])
    built = services.record_export_build(export_id=export.pk)
    path = built.file.path
    later = timezone.now() + datetime.timedelta(hours=settings.KIDNEYWEB_RECORD_EXPORT_KEEP_HOURS, minutes=1)

    expired, resent = services.record_exports_sweep(now=later)

    assert (expired, resent) == ([export.pk], [])
    assert not os.path.exists(path)
    gone = _download(client, export)
    assert gone.status_code == 410 and "was deleted 24 hours after it was built" in gone.content.decode()
    assert "Ask for a new export" in gone.content.decode()
    assert not PatientAccess.objects.filter(what="export").exists()


def test_an_export_that_fails_says_why_and_keeps_no_file(client, boss, record, monkeypatch):
    def storage_fails(**kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(record_export, "patient_record_zip", storage_fails)
    client.force_login(boss)
    export = _ask(client, record["patient"])

    failed = services.record_export_build(export_id=export.pk)

    assert failed.status == "failed" and "The storage failed while it was written" in failed.error
    assert not failed.file
    page = client.get(reverse("diagnosis:record_export", args=[record["patient"].pk, export.pk])).content.decode()
    assert "Failed" in page and "The storage failed" in page and "Ask for a new export" in page
    assert _download(client, export).status_code == 410


def test_a_dicom_slices_result_goes_with_the_record_as_the_archive_takes_it(client, boss, clinician, organization,
                                                                              active_model_version):
    import pydicom

    from diagnosis.dicom_report import COMPREHENSIVE_SR
    from diagnosis.dicom_uids import capture_uids, report_uids

    from .test_api_scan_dicom import STUDY, _dicom_scan, _result

    patient = PatientFactory(organization=organization, name="Grace Hopper", mrn="00123456")
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan, model_version=active_model_version)
    queued = _dicom_scan(patient, clinician, seed=1)  # its diagnosis not finished: nothing to put in an archive
    client.force_login(boss)

    archive = _zip(_export(client, patient))

    capture = pydicom.dcmread(io.BytesIO(archive.read(f"scans/{scan.pk}/result.dcm")))
    report = pydicom.dcmread(io.BytesIO(archive.read(f"scans/{scan.pk}/result-sr.dcm")))
    assert (capture.SOPInstanceUID, report.SOPInstanceUID) == (capture_uids(scan, prediction)[1],
                                                               report_uids(scan, prediction)[1])
    assert (report.SOPClassUID, report.StudyInstanceUID, report.PatientID) == (COMPREHENSIVE_SR, STUDY, "00123456")
    assert not any(name.endswith(".dcm") for name in archive.namelist() if name.startswith(f"scans/{queued.pk}/"))
    assert "result-sr.dcm" in archive.read("README.txt").decode()
