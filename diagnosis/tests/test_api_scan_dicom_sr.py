"""GET /api/v1/scans/{id}/dicom-sr/: the AI result as a DICOM Structured Report (TID 1500, as IHE AIR gives AI
findings), in the study the slice came from, under the patient's identity as kept here; a clinician's review makes
it a new, verified instance."""

import shutil
import subprocess

import pydicom
import pytest
from django.utils import timezone
from pydicom.sr.codedict import codes

from diagnosis import dicom_report, services
from diagnosis.dicom_uids import capture_uids, report_uids
from diagnosis.models import PatientAccess, Prediction, Scan

from . import openapi
from .factories import DonePredictionFactory, PatientFactory, ScanFactory, token_client
from .test_api_scan_dicom import STUDY, _dicom_scan, _result, patient  # noqa: F401 (a fixture)
from .test_api_scan_dicom import _capture as _report


def _items(dataset, path=()):
    """Every content item of the report's tree as (concept names from the root, item)."""
    for item in getattr(dataset, "ContentSequence", []):
        name = item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else ""
        yield (*path, name), item
        yield from _items(item, (*path, name))


def _groups(report) -> dict[str, dict]:
    """The report's measurement groups by tracking identifier: their finding's code, probability and image."""
    groups = {}
    for path, item in _items(report):
        if path == ("Imaging Measurements", "Measurement Group"):
            found = {name[-1]: sub for name, sub in _items(item)}
            groups[found["Tracking Identifier"].TextValue] = {
                "finding": found["Finding"].ConceptCodeSequence[0].CodeValue,
                "site": found["Finding Site"].ConceptCodeSequence[0].CodeValue,
                "probability": (float(found["Probability"].MeasuredValueSequence[0].NumericValue)
                                if "Probability" in found else None),
                "image": found["Source of Measurement"].ReferencedSOPSequence[0].ReferencedSOPInstanceUID,
            }
    return groups


def test_an_ai_result_comes_as_a_coded_report_in_the_slices_study_under_the_patients_identity(
        client, api_client, patient, clinician, active_model_version, monkeypatch):
    monkeypatch.setattr(pydicom.config.settings, "writing_validation_mode", pydicom.config.RAISE)
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan)

    response = api_client.get(f"/api/v1/scans/{scan.pk}/dicom-sr/")

    report = _report(response)
    assert openapi.mismatches(openapi.load(client), "/api/v1/scans/{id}/dicom-sr/", "get", response) == []
    assert response["Content-Disposition"] == f'attachment; filename="scan-{scan.pk}-ai-result-sr.dcm"'
    assert report.SOPClassUID == dicom_report.COMPREHENSIVE_SR == report.file_meta.MediaStorageSOPClassUID
    assert (report.Modality, report.SeriesNumber) == ("SR", 9903)
    assert (report.SeriesInstanceUID, report.SOPInstanceUID) == report_uids(scan, prediction)
    assert report.SeriesInstanceUID != capture_uids(scan, prediction)[0]  # reports apart from the captures
    assert (report.StudyInstanceUID, report.AccessionNumber, report.StudyDate) == (STUDY, "A-20261206-71", "20261205")
    assert report.StudyDescription == "CT ABDOMEN"  # as the capture, so that the study lists alike
    assert (str(report.PatientName), report.PatientID, report.PatientBirthDate, report.PatientSex) == (
        "Grace Hopper", "00123456", "19061209", "F")
    # The AI's result alone is for a clinician to confirm.
    assert (report.CompletionFlag, report.VerificationFlag, report.PreliminaryFlag) == (
        "COMPLETE", "UNVERIFIED", "PRELIMINARY")
    assert report.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert _groups(report) == {"AI finding": {"finding": "95570007", "site": codes.SCT.Kidney.value,
                                              "probability": 0.91, "image": scan.dicom_instance_uid}}
    names = {path[-1]: item for path, item in _items(report)}
    assert names["Algorithm Name"].TextValue == "kidneyweb"
    assert names["Algorithm Version"].TextValue == prediction.model_version.name
    assert "Person Observer Name" not in names  # nobody read it yet
    [evidence] = report.CurrentRequestedProcedureEvidenceSequence  # the slice, as the archive holds it
    [series] = evidence.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == scan.dicom_series_uid
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == scan.dicom_instance_uid
    assert PatientAccess.objects.filter(scan=scan, what=PatientAccess.What.DICOM,
                                        channel=PatientAccess.Channel.API).count() == 1


def test_a_clinicians_review_makes_a_new_verified_final_report_with_their_reading_beside_the_ais(
        api_client, patient, clinician, active_model_version):
    clinician.first_name, clinician.last_name = "Alice", "Ng"
    clinician.save()
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan, model_version=active_model_version)
    before = _report(api_client.get(f"/api/v1/scans/{scan.pk}/dicom-sr/"))

    corrected = services.review_create(scan=scan, user=clinician, label="Tumor", prediction_id=prediction.pk)
    after = _report(api_client.get(f"/api/v1/scans/{scan.pk}/dicom-sr/"))

    assert after.SOPInstanceUID == report_uids(scan, prediction, corrected)[1] != before.SOPInstanceUID
    assert after.SeriesInstanceUID == before.SeriesInstanceUID
    assert (after.VerificationFlag, after.PreliminaryFlag) == ("VERIFIED", "FINAL")
    [verifier] = after.VerifyingObserverSequence
    assert (str(verifier.VerifyingObserverName), verifier.VerifyingOrganization) == ("Ng^Alice", "St. Elsewhere")
    when = timezone.localtime(corrected.reviewed_at)  # when it was read, not when the file was made
    assert verifier.VerificationDateTime.startswith(when.strftime("%Y%m%d%H%M%S"))
    assert (after.ContentDate, after.ContentTime) == (when.strftime("%Y%m%d"), when.strftime("%H%M%S"))
    groups = _groups(after)
    assert groups["AI finding"]["finding"] == "95570007"  # what the AI said stays, beside the correction
    assert groups["Clinician's reading"] == {"finding": "126880001", "site": codes.SCT.Kidney.value,
                                             "probability": None, "image": scan.dicom_instance_uid}
    names = {path[-1]: item for path, item in _items(after)}
    assert str(names["Person Observer Name"].PersonName) == "Ng^Alice"


def test_the_same_report_fetched_again_is_byte_for_byte_the_same_instance(api_client, patient, clinician,
                                                                          active_model_version):
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan, model_version=active_model_version)
    services.review_create(scan=scan, user=clinician, label="Stone", prediction_id=prediction.pk)

    once, again = (api_client.get(f"/api/v1/scans/{scan.pk}/dicom-sr/").content for _ in range(2))

    assert once == again  # an archive stores the same instance once; a second fetch must not differ from the first


def test_an_out_of_scope_image_is_reported_as_indeterminate_not_as_a_class(api_client, patient, clinician,
                                                                          active_model_version):
    scan = _dicom_scan(patient, clinician)
    _result(scan, label="Normal", top=0.97, out_of_scope=True)

    report = _report(api_client.get(f"/api/v1/scans/{scan.pk}/dicom-sr/"))

    ai = _groups(report)["AI finding"]
    assert (ai["finding"], ai["probability"]) == (codes.SCT.Indeterminate.value, None)  # no class to be sure of


def test_the_report_passes_the_reference_validator_whatever_script_the_name_is_written_in(
        api_client, organization, clinician, active_model_version, tmp_path):
    validator = shutil.which("dciodvfy")  # David Clunie's IOD checker, Debian's dicom3tools
    if validator is None:
        pytest.skip("needs dciodvfy (Debian package dicom3tools; .ci/run installs it)")
    patient = PatientFactory(organization=organization, mrn="00123456", name="সুমি দাস\\Ødegård^Jr")
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan)
    clinician.first_name, clinician.last_name = "Zoë", "Ødegård"
    clinician.save()
    services.review_create(scan=scan, user=clinician, label="Cyst", prediction_id=prediction.pk)
    unreviewed = _dicom_scan(patient, clinician, seed=1)
    _result(unreviewed)
    odd = _dicom_scan(patient, clinician, seed=2)
    _result(odd, out_of_scope=True)

    for which in (scan, unreviewed, odd):
        path = tmp_path / f"report-{which.pk}.dcm"
        path.write_bytes(api_client.get(f"/api/v1/scans/{which.pk}/dicom-sr/").content)
        checked = subprocess.run([validator, str(path)], capture_output=True, text=True, timeout=60)

        report = checked.stdout + checked.stderr
        assert "ComprehensiveSR" in report, report  # checked as a Comprehensive SR
        assert [line for line in report.splitlines() if line.startswith("Error")] == [], report


def test_no_report_without_a_study_an_instance_uid_a_finished_result_or_once_withdrawn(
        api_client, patient, clinician, active_model_version):
    png = ScanFactory(patient=patient, uploaded_by=clinician)
    DonePredictionFactory(scan=png)
    failed = _dicom_scan(patient, clinician)
    Prediction.objects.filter(scan=failed).update(status=Prediction.Status.FAILED, failure_reason="worker died")
    withdrawn = _dicom_scan(patient, clinician, seed=2)
    _result(withdrawn)
    services.scan_withdraw(scan=withdrawn, user=clinician, reason="wrong patient")
    headless = _dicom_scan(patient, clinician, seed=3)
    _result(headless)
    Scan.objects.filter(pk=headless.pk).update(dicom_instance_uid="")

    answers = {name: api_client.get(f"/api/v1/scans/{scan.pk}/dicom-sr/")
               for name, scan in (("png", png), ("failed", failed), ("withdrawn", withdrawn), ("headless", headless))}

    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 409)
    assert "came without a DICOM study" in answers["png"].json()["detail"]
    assert "diagnosis is failed" in answers["failed"].json()["detail"]
    assert "withdrawn as entered in error" in answers["withdrawn"].json()["detail"]
    assert "named no series or instance UID" in answers["headless"].json()["detail"]
    assert not PatientAccess.objects.filter(what=PatientAccess.What.DICOM).exists()


def test_another_organizations_scan_is_404(api_client, other_organization, other_clinician, active_model_version):
    theirs = _dicom_scan(PatientFactory(organization=other_organization, mrn="00999"), other_clinician)
    _result(theirs)

    assert api_client.get(f"/api/v1/scans/{theirs.pk}/dicom-sr/").status_code == 404
    assert token_client(other_clinician).get(f"/api/v1/scans/{theirs.pk}/dicom-sr/").status_code == 200


def test_a_reader_built_on_highdicom_finds_the_findings_where_tid_1500_puts_them(
        api_client, patient, clinician, active_model_version):
    import io

    import highdicom as hd

    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan, model_version=active_model_version)
    review = services.review_create(scan=scan, user=clinician, label="Cyst", prediction_id=prediction.pk)

    report = hd.sr.srread(io.BytesIO(api_client.get(f"/api/v1/scans/{scan.pk}/dicom-sr/").content))

    groups = {group.tracking_identifier: group for group in report.content.get_image_measurement_groups()}
    assert set(groups) == {"AI finding", "Clinician's reading"}
    [probability] = groups["AI finding"].get_measurements(name=codes.DCM.Probability)
    assert (groups["AI finding"].finding_type.value, probability.value) == ("95570007", 0.91)
    assert groups["Clinician's reading"].finding_type.value == "722223000"
    assert [site.value.value for site in groups["AI finding"].finding_sites] == [codes.SCT.Kidney.value]
    assert groups["AI finding"].source_images[0].referenced_sop_instance_uid == scan.dicom_instance_uid
    assert report_uids(scan, prediction, review)[1] == report.SOPInstanceUID
