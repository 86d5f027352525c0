"""GET /api/v1/scans/{id}/dicom/: the AI result as a DICOM Secondary Capture for the hospital's archive, in the study
the slice came from, under the patient's identity as kept here; the same capture fetched again is the same
instance."""

import datetime
import io

import numpy as np
import pydicom
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from diagnosis import dicom_export, services
from diagnosis.models import PatientAccess, Prediction
from mlcore.synthetic import dicom_bytes

from . import openapi
from .factories import DonePredictionFactory, PatientFactory, ReviewFactory, ScanFactory, token_client

STUDY = "1.2.826.0.1.3680043.8.498.71"


def _overlay() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 64), (255, 0, 0, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def patient(organization):
    return PatientFactory(organization=organization, name="Grace Hopper", mrn="00123456",
                          birth_date=datetime.date(1906, 12, 9), sex="F")


def _dicom_scan(patient, clinician, seed=0):
    pixels = np.random.default_rng(seed).integers(900, 1300, (64, 64), dtype=np.uint16)
    data = dicom_bytes(pixels, patient_id=patient.mrn, study_uid=STUDY, accession_number="A-20261206-71",
                       study_date="20261205", study_time="093015", study_description="CT ABDOMEN")
    return services.scan_create(patient=patient, file=SimpleUploadedFile("IM1.dcm", data), uploaded_by=clinician)


def _result(scan, **kwargs):
    Prediction.objects.filter(scan=scan).delete()  # the queued one scan_create made
    prediction = DonePredictionFactory(scan=scan, **{"label": "Stone", "top": 0.91, **kwargs})
    prediction.heatmap.save("h.png", ContentFile(_overlay()))
    return prediction


def _capture(response) -> pydicom.Dataset:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom"
    with pydicom.config.strict_reading():
        return pydicom.dcmread(io.BytesIO(response.content))


def test_an_ai_result_comes_as_a_secondary_capture_in_the_slices_study_under_the_patients_identity(
        client, api_client, patient, clinician, active_model_version, monkeypatch):
    # Any value DICOM does not allow (too long, a wrong character) raises instead of being written.
    monkeypatch.setattr(pydicom.config.settings, "writing_validation_mode", pydicom.config.RAISE)
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan)

    response = api_client.get(f"/api/v1/scans/{scan.pk}/dicom/")

    capture = _capture(response)
    assert openapi.mismatches(openapi.load(client), "/api/v1/scans/{id}/dicom/", "get", response) == []
    assert response["Content-Disposition"] == f'attachment; filename="scan-{scan.pk}-ai-result.dcm"'
    assert capture.SOPClassUID == dicom_export.SECONDARY_CAPTURE == capture.file_meta.MediaStorageSOPClassUID
    assert (capture.StudyInstanceUID, capture.AccessionNumber) == (STUDY, "A-20261206-71")
    assert (capture.StudyDate, capture.StudyTime, capture.StudyDescription) == ("20261205", "093015", "CT ABDOMEN")
    [origin] = capture.SourceImageSequence  # the scanner's slice it was made from
    assert (origin.ReferencedSOPClassUID, origin.ReferencedSOPInstanceUID) == (
        "1.2.840.10008.5.1.4.1.1.2", scan.dicom_instance_uid)  # CT Image Storage
    assert capture.SeriesInstanceUID not in (scan.dicom_series_uid, STUDY) and capture.SeriesNumber == 9901
    assert (str(capture.PatientName), capture.PatientID, capture.PatientBirthDate, capture.PatientSex) == (
        "Grace Hopper", "00123456", "19061209", "F")
    assert (capture.Modality, capture.ConversionType, list(capture.ImageType)) == ("OT", "WSD", ["DERIVED", "SECONDARY"])
    assert capture.BurnedInAnnotation == "YES" and scan.dicom_instance_uid in capture.DerivationDescription
    assert prediction.model_version.name in capture.SeriesDescription
    pixels = capture.pixel_array
    assert capture.PhotometricInterpretation == "RGB" and pixels.shape == (capture.Rows, capture.Columns, 3)
    assert capture.Columns >= dicom_export.MIN_WIDTH_PX  # a 64-pixel slice is widened so the text stays legible
    band, image = pixels[: capture.Rows - capture.Columns], pixels[capture.Rows - capture.Columns:]
    assert band.max() == 255 and np.median(band) == 0  # white text on black
    assert (image[..., 0].astype(int) - image[..., 2]).mean() > 50  # the red heat map over the grey slice
    assert PatientAccess.objects.filter(scan=scan, what=PatientAccess.What.DICOM,
                                        channel=PatientAccess.Channel.API).count() == 1



def test_the_capture_passes_the_reference_validator_whatever_script_the_name_is_written_in(
        api_client, organization, clinician, active_model_version, tmp_path):
    import shutil
    import subprocess

    validator = shutil.which("dciodvfy")  # David Clunie's IOD checker, Debian's dicom3tools
    if validator is None:
        pytest.skip("needs dciodvfy (Debian package dicom3tools; .ci/run installs it)")
    patient = PatientFactory(organization=organization, mrn="00123456", name="সুমি দাস\\Ødegård^Jr")
    scan = _dicom_scan(patient, clinician)
    _result(scan)
    response = api_client.get(f"/api/v1/scans/{scan.pk}/dicom/")
    (tmp_path / "capture.dcm").write_bytes(response.content)

    checked = subprocess.run([validator, str(tmp_path / "capture.dcm")], capture_output=True, text=True, timeout=60)

    report = checked.stdout + checked.stderr
    assert "SCImage" in report, report  # checked as a Secondary Capture image
    assert [line for line in report.splitlines() if line.startswith("Error")] == [], report
    assert "Study Date" not in report  # kept from the slice's header, as a DICOMDIR needs it
    assert str(_capture(response).PatientName) == "সুমি দাস Ødegård Jr"  # DICOM's separators left out


def test_a_patient_of_unknown_sex_is_written_with_an_empty_sex_as_dicom_knows_no_u(
        api_client, organization, clinician, active_model_version):
    patient = PatientFactory(organization=organization, mrn="00123456", sex="U")
    scan = _dicom_scan(patient, clinician)
    _result(scan)

    assert _capture(api_client.get(f"/api/v1/scans/{scan.pk}/dicom/")).PatientSex == ""

def test_the_same_capture_fetched_again_is_the_same_instance_and_a_studys_slices_share_one_series(
        api_client, patient, clinician, active_model_version):
    first, second = _dicom_scan(patient, clinician), _dicom_scan(patient, clinician, seed=1)
    _result(first, model_version=active_model_version), _result(second, model_version=active_model_version)

    once, again = (_capture(api_client.get(f"/api/v1/scans/{first.pk}/dicom/")) for _ in range(2))
    other = _capture(api_client.get(f"/api/v1/scans/{second.pk}/dicom/"))

    assert once.SOPInstanceUID == again.SOPInstanceUID and once.SOPInstanceUID.startswith("2.25.")
    assert len(once.SOPInstanceUID) <= 64 and other.SOPInstanceUID != once.SOPInstanceUID
    assert other.SeriesInstanceUID == once.SeriesInstanceUID
    _result(first, model_version=active_model_version)  # diagnosed again: another result is another instance
    assert _capture(api_client.get(f"/api/v1/scans/{first.pk}/dicom/")).SOPInstanceUID != once.SOPInstanceUID



def test_a_review_makes_a_new_instance_whose_band_states_the_clinicians_reading(
        api_client, patient, clinician, active_model_version):
    from django.utils import timezone

    from diagnosis.dicom_uids import capture_uids

    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan, model_version=active_model_version)
    before = _capture(api_client.get(f"/api/v1/scans/{scan.pk}/dicom/"))

    corrected = services.review_create(scan=scan, user=clinician, label="Tumor", prediction_id=prediction.pk)
    after = _capture(api_client.get(f"/api/v1/scans/{scan.pk}/dicom/"))

    assert after.SOPInstanceUID == capture_uids(scan, prediction, corrected)[1] != before.SOPInstanceUID
    assert after.SeriesInstanceUID == before.SeriesInstanceUID  # the same series of the model's results
    assert after.Rows > before.Rows  # one more line in the band: the reading is burned in
    when = timezone.localtime(corrected.reviewed_at)
    assert (after.ContentDate, after.ContentTime) == (when.strftime("%Y%m%d"), when.strftime("%H%M%S"))
    reader = clinician.get_full_name() or clinician.get_username()
    lines = dicom_export.capture_lines(prediction, heat_map=True, review=corrected)
    assert lines[:2] == ["AI: Stone 91%", f"Clinician: Tumor, corrects the AI ({reader}, {when:%Y-%m-%d %H:%M})"]
    confirmed = services.review_create(scan=scan, user=clinician, label="Stone", prediction_id=prediction.pk)
    assert dicom_export.capture_lines(prediction, heat_map=True, review=confirmed)[1].startswith(
        "Clinician: Stone, agrees with the AI")
    assert _capture(api_client.get(f"/api/v1/scans/{scan.pk}/dicom/")).SOPInstanceUID not in (
        before.SOPInstanceUID, after.SOPInstanceUID)


def test_a_review_of_an_earlier_result_is_not_shown_on_a_newer_one(api_client, patient, clinician, active_model_version):
    scan = _dicom_scan(patient, clinician)
    first = _result(scan, model_version=active_model_version)
    services.review_create(scan=scan, user=clinician, label="Tumor", prediction_id=first.pk)
    newer = DonePredictionFactory(scan=scan, label="Cyst", top=0.88, model_version=active_model_version)

    capture = _capture(api_client.get(f"/api/v1/scans/{scan.pk}/dicom/"))

    from diagnosis.dicom_uids import capture_uids
    assert capture.SOPInstanceUID == capture_uids(scan, newer)[1]


def test_a_withdrawal_names_the_captures_an_archive_may_hold_so_the_engine_can_reject_them(
        api_client, notified, patient, clinician, active_model_version):
    from diagnosis.models import WebhookDelivery

    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan, model_version=active_model_version)
    stored = _capture(api_client.get(f"/api/v1/scans/{scan.pk}/dicom/")).SOPInstanceUID
    services.review_create(scan=scan, user=clinician, label="Stone", prediction_id=prediction.pk)
    reviewed = _capture(api_client.get(f"/api/v1/scans/{scan.pk}/dicom/")).SOPInstanceUID
    png = ScanFactory(patient=patient, uploaded_by=clinician)

    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")
    services.scan_withdraw(scan=png, user=clinician, reason="wrong patient")

    withdrawn = [d.payload for d in WebhookDelivery.objects.filter(event="scan.withdrawn").order_by("id")]
    from diagnosis.dicom_uids import report_uids
    # Each capture with the structured report of the same result (GET .../dicom-sr/), which an engine may have stored.
    review = scan.current_review
    assert withdrawn[0]["dicom_result_uids"] == [stored, report_uids(scan, prediction)[1], reviewed,
                                                 report_uids(scan, prediction, review)[1]]
    assert withdrawn[0]["scan"]["dicom_path"] == f"/api/v1/scans/{scan.pk}/dicom/"
    assert "dicom_result_uids" not in withdrawn[1]  # a PNG upload: no capture was ever made

def test_the_band_states_an_uncertain_or_out_of_scope_result_as_needing_review(patient, active_model_version):
    scan = ScanFactory(patient=patient, dicom_study_uid=STUDY)
    sure = DonePredictionFactory(scan=scan, label="Tumor", top=0.93)
    unsure = DonePredictionFactory(scan=scan, label="Cyst", top=0.55)
    odd = DonePredictionFactory(scan=scan, label="Normal", out_of_scope=True)

    assert dicom_export.capture_lines(sure, heat_map=True)[0] == "AI: Tumor 93%"
    assert dicom_export.capture_lines(unsure, heat_map=False)[0] == "AI: Cyst 55%, uncertain (under 70%), needs review"
    assert dicom_export.capture_lines(odd, heat_map=False)[0].startswith("AI: out of scope")
    assert dicom_export.capture_lines(sure, heat_map=True)[2] == dicom_export.NOTICE
    # A clinician's reading settles what the AI left open.
    review = ReviewFactory(scan=scan, prediction=unsure, label="Cyst")
    assert dicom_export.capture_lines(unsure, heat_map=False, review=review)[0] == "AI: Cyst 55%, uncertain (under 70%)"


def test_no_capture_without_a_study_a_finished_result_or_once_withdrawn(api_client, patient, clinician,
                                                                        active_model_version):
    png = ScanFactory(patient=patient, uploaded_by=clinician)
    DonePredictionFactory(scan=png)
    failed = _dicom_scan(patient, clinician)
    Prediction.objects.filter(scan=failed).update(status=Prediction.Status.FAILED, failure_reason="worker died")
    queued = _dicom_scan(patient, clinician, seed=1)
    withdrawn = _dicom_scan(patient, clinician, seed=2)
    _result(withdrawn)
    services.scan_withdraw(scan=withdrawn, user=clinician, reason="wrong patient")

    answers = {name: api_client.get(f"/api/v1/scans/{scan.pk}/dicom/")
               for name, scan in (("png", png), ("failed", failed), ("queued", queued), ("withdrawn", withdrawn))}

    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 409)
    assert "came without a DICOM study" in answers["png"].json()["detail"]
    as_dicom = api_client.get(f"/api/v1/scans/{png.pk}/dicom/", HTTP_ACCEPT="application/dicom")
    assert as_dicom.status_code == 409 and as_dicom["Content-Type"] == "application/json"  # an error stays JSON
    assert "diagnosis is failed" in answers["failed"].json()["detail"]
    assert "diagnosis is not finished" in answers["queued"].json()["detail"]
    assert "withdrawn as entered in error" in answers["withdrawn"].json()["detail"]
    assert not PatientAccess.objects.filter(what=PatientAccess.What.DICOM).exists()


def test_another_organizations_scan_is_404(api_client, other_organization, other_clinician, active_model_version):
    theirs = ScanFactory(patient=PatientFactory(organization=other_organization), dicom_study_uid=STUDY)
    DonePredictionFactory(scan=theirs)

    assert api_client.get(f"/api/v1/scans/{theirs.pk}/dicom/").status_code == 404
    assert token_client(other_clinician).get(f"/api/v1/scans/{theirs.pk}/dicom/").status_code == 200
