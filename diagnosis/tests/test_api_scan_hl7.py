"""GET /api/v1/scans/{id}/hl7/: the scan's result as an HL7 v2.5.1 ORU^R01 message for the hospital's interface
engine, checked against HL7's message structure and data types by hl7apy's strict validation, and for the lengths
v2.5.1 allows where that validation does not look."""

import datetime

import pytest
from django.utils import timezone
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from diagnosis import services
from diagnosis.models import PatientAccess, Prediction, Review, Scan

from . import openapi
from .factories import DonePredictionFactory, PatientFactory, ScanFactory, token_client
from .test_api_scan_dicom import _dicom_scan, _result, patient  # noqa: F401 (a fixture)


def _message(response):
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "x-application/hl7-v2+er7; charset=utf-8"
    text = response.content.decode()
    assert text.endswith("\r") and "\n" not in text  # segments end with a carriage return, as ER7 has them
    # Strict: every segment, field and data type where ORU_R01 of v2.5.1 puts it, and no field longer than allowed.
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT)
    message.validate()
    assert len(message.msh.msh_10.value) <= 20  # MSH-10 is ST(20)
    for segment in text.split("\r"):
        if segment.startswith("OBX|"):
            assert len(segment.split("|")[3].split("^")[0]) <= 20, segment  # CWE.1 is ST(20)
    return message, text


def _observations(message) -> dict[str, dict]:
    """The message's OBX by their identifier: value type, value, status, responsible observer and NTE notes."""
    group = message.oru_r01_patient_result.oru_r01_order_observation
    found = {}
    for observation in group.oru_r01_observation:
        obx = observation.obx
        found[obx.obx_3.obx_3_1.value] = {
            "type": obx.obx_2.value, "value": obx.obx_5.value, "status": obx.obx_11.value,
            "observer": obx.obx_16.value, "notes": [nte.nte_3.value for nte in observation.children
                                                    if nte.name == "NTE"]}
    return found


def test_an_ai_result_is_a_preliminary_oru_for_the_patient_with_its_class_and_each_probability(
        client, api_client, patient, clinician, active_model_version):
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan)

    response = api_client.get(f"/api/v1/scans/{scan.pk}/hl7/")

    message, text = _message(response)
    assert openapi.mismatches(openapi.load(client), "/api/v1/scans/{id}/hl7/", "get", response) == []
    assert response["Content-Disposition"] == f'attachment; filename="scan-{scan.pk}-result.hl7"'
    assert message.msh.msh_9.value == "ORU^R01^ORU_R01" and message.msh.msh_12.value == "2.5.1"
    assert message.msh.msh_18.value == "UNICODE UTF-8"
    pid = message.oru_r01_patient_result.oru_r01_patient.pid
    assert pid.pid_3.value == f"00123456^^^{patient.organization.slug}^MR"
    assert (pid.pid_5.value, pid.pid_7.value, pid.pid_8.value) == ("Grace Hopper", "19061209", "F")
    group = message.oru_r01_patient_result.oru_r01_order_observation
    assert group.obr.obr_3.value == f"{scan.pk}^KIDNEYWEB"
    assert (group.obr.obr_18.value, group.obr.obr_25.value) == ("A-20261206-71", "P")
    assert group.obr.obr_7.value.startswith("20261205093015")  # when the study was made, as its header said
    found = _observations(message)
    assert found["AI-CLASS"]["value"] == "95570007^Kidney stone^SCT^Stone^Stone^99KIDNEYWEB"
    probabilities = {code: float(obx["value"]) for code, obx in found.items() if code.startswith("P-")}
    assert probabilities == {f"P-{name.upper()}": pytest.approx(value, abs=1e-4)
                             for name, value in prediction.probabilities.items()}
    assert probabilities["P-STONE"] == pytest.approx(0.91)
    assert found["110180"]["value"] == scan.dicom_study_uid
    assert found["PDF-REPORT"]["value"] == f"http://testserver/api/v1/scans/{scan.pk}/report/^KIDNEYWEB^AP^PDF"
    assert found["CONCLUSION"]["value"].startswith("AI result, not yet reviewed by a clinician: Stone")
    assert {obx["status"] for obx in found.values()} == {"P"}
    assert "READING" not in found
    assert "Decision support, not a diagnosis." in group.nte.nte_3.value
    assert prediction.model_version.name in text  # the model, as the equipment that made each observation
    assert PatientAccess.objects.filter(scan=scan, what=PatientAccess.What.HL7,
                                        channel=PatientAccess.Channel.API).count() == 1


def test_a_review_makes_the_result_final_and_a_later_one_corrected_with_the_reader_named(
        api_client, patient, clinician, active_model_version):
    clinician.first_name, clinician.last_name = "Ada", "Lovelace"
    clinician.save()
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan)
    services.review_create(scan=scan, user=clinician, label="Cyst", prediction_id=prediction.pk,
                           comment="Thin wall, no calcification")

    message, text = _message(api_client.get(f"/api/v1/scans/{scan.pk}/hl7/"))

    group = message.oru_r01_patient_result.oru_r01_order_observation
    found = _observations(message)
    assert group.obr.obr_25.value == "F" and {obx["status"] for obx in found.values()} == {"F"}
    assert found["READING"]["value"] == "722223000^Cyst of kidney^SCT^Cyst^Cyst^99KIDNEYWEB"
    assert found["READING"]["observer"] == f"{clinician.username}^Lovelace^Ada"
    assert found["READING"]["notes"] == ["Corrects the AI result (Stone).", "Thin wall, no calcification"]
    # Each observation's notes are numbered from 1, as NTE-1 counts them.
    assert [line.split("|")[1] for line in text.split("\r") if line.startswith("NTE|")][-2:] == ["1", "2"]
    assert group.obr.obr_32.value == f"{clinician.username}&Lovelace&Ada"
    assert found["AI-CLASS"]["value"].startswith("95570007^")  # what the AI said stays on record

    services.review_create(scan=scan, user=clinician, label="Stone", prediction_id=prediction.pk)
    corrected, _ = _message(api_client.get(f"/api/v1/scans/{scan.pk}/hl7/"))

    assert corrected.oru_r01_patient_result.oru_r01_order_observation.obr.obr_25.value == "C"
    assert _observations(corrected)["READING"]["value"].startswith("95570007^")


def test_the_same_state_is_the_same_message_and_a_change_a_new_control_id(
        api_client, patient, clinician, active_model_version):
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan)

    first = api_client.get(f"/api/v1/scans/{scan.pk}/hl7/").content
    again = api_client.get(f"/api/v1/scans/{scan.pk}/hl7/").content
    services.review_create(scan=scan, user=clinician, label="Stone", prediction_id=prediction.pk)
    reviewed, _ = _message(api_client.get(f"/api/v1/scans/{scan.pk}/hl7/"))

    assert first == again
    assert reviewed.msh.msh_10.value != parse_message(first.decode()).msh.msh_10.value


def test_a_withdrawn_scan_marks_every_observation_wrong_so_the_receiver_takes_it_back(
        api_client, patient, clinician, active_model_version):
    scan = _dicom_scan(patient, clinician)
    _result(scan)
    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")

    message, _ = _message(api_client.get(f"/api/v1/scans/{scan.pk}/hl7/"))

    found = _observations(message)
    assert message.oru_r01_patient_result.oru_r01_order_observation.obr.obr_25.value == "C"
    assert {obx["status"] for obx in found.values()} == {"W"}
    assert found["CONCLUSION"]["value"] == "Withdrawn as entered in error: wrong patient. Disregard this report."
    # Filed under the patient it was sent for, where the receiving system must take it back from.
    assert message.oru_r01_patient_result.oru_r01_patient.pid.pid_3.value.startswith("00123456^")


def test_a_restored_scans_reading_given_before_its_withdrawal_is_sent_as_a_correction_of_the_wrong_mark(
        api_client, patient, clinician, active_model_version):
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan)
    review = services.review_create(scan=scan, user=clinician, label="Stone", prediction_id=prediction.pk)
    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")
    now = timezone.now()
    Prediction.objects.filter(pk=prediction.pk).update(finished_at=now - datetime.timedelta(hours=2))
    Review.objects.filter(pk=review.pk).update(reviewed_at=now - datetime.timedelta(hours=2))
    Scan.objects.filter(pk=scan.pk).update(uploaded_at=now - datetime.timedelta(hours=3),
                                           withdrawn_at=now - datetime.timedelta(hours=1))
    scan.withdrawals.update(withdrawn_at=now - datetime.timedelta(hours=1))
    withdrawn, _ = _message(api_client.get(f"/api/v1/scans/{scan.pk}/hl7/"))
    scan.refresh_from_db()
    services.scan_restore(scan=scan, user=clinician, reason="it was the right patient after all")

    restored, _ = _message(api_client.get(f"/api/v1/scans/{scan.pk}/hl7/"))

    group = restored.oru_r01_patient_result.oru_r01_order_observation
    assert group.obr.obr_25.value == "C" and {obx["status"] for obx in _observations(restored).values()} == {"C"}
    # Its status changed after the W the receiver filed: the change time must not read as older than that one.
    assert group.obr.obr_22.value > withdrawn.oru_r01_patient_result.oru_r01_order_observation.obr.obr_22.value


def test_a_restored_scan_read_only_after_its_restoral_is_final_and_one_never_read_preliminary(
        api_client, patient, clinician, active_model_version):
    scan = _dicom_scan(patient, clinician)
    prediction = _result(scan)
    services.scan_withdraw(scan=scan, user=clinician, reason="wrong patient")
    services.scan_restore(scan=scan, user=clinician, reason="it was the right patient after all")

    unread, _ = _message(api_client.get(f"/api/v1/scans/{scan.pk}/hl7/"))
    services.review_create(scan=scan, user=clinician, label="Stone", prediction_id=prediction.pk)
    read, _ = _message(api_client.get(f"/api/v1/scans/{scan.pk}/hl7/"))

    assert unread.oru_r01_patient_result.oru_r01_order_observation.obr.obr_25.value == "P"
    assert read.oru_r01_patient_result.oru_r01_order_observation.obr.obr_25.value == "F"


def test_a_running_or_failed_diagnosis_says_so_without_an_ai_class(api_client, patient, clinician,
                                                                   active_model_version):
    running = _dicom_scan(patient, clinician)
    failed = _dicom_scan(patient, clinician, seed=2)
    Prediction.objects.filter(scan=failed).update(status=Prediction.Status.FAILED, failure_reason="worker died",
                                                  finished_at=timezone.now())

    waiting, _ = _message(api_client.get(f"/api/v1/scans/{running.pk}/hl7/"))
    gave_up, _ = _message(api_client.get(f"/api/v1/scans/{failed.pk}/hl7/"))

    for message, status, conclusion in ((waiting, "I", "The AI result is not ready yet."),
                                        (gave_up, "X", "The AI diagnosis failed (worker died); a clinician must "
                                                       "read the slice.")):
        group = message.oru_r01_patient_result.oru_r01_order_observation
        assert (group.obr.obr_25.value, group.orc.orc_5.value) == (status, {"I": "IP", "X": "CA"}[status])
        assert "AI-CLASS" not in _observations(message)
        assert _observations(message)["CONCLUSION"]["value"] == conclusion
        # Pending while it runs, not to be had once it failed: never a final "not ready yet".
        assert _observations(message)["CONCLUSION"]["status"] == status


def test_delimiters_in_names_and_comments_are_escaped_and_an_upload_has_no_study_or_accession(
        api_client, organization, clinician, active_model_version):
    patient = PatientFactory(organization=organization, mrn="00|77", name="সুমি দাস ^ Ødegård & Co~\\")
    scan = ScanFactory(patient=patient, uploaded_by=clinician)
    prediction = DonePredictionFactory(scan=scan, label="Tumor")
    services.review_create(scan=scan, user=clinician, label="Tumor", prediction_id=prediction.pk,
                           comment="Line one\nline | two")

    message, text = _message(api_client.get(f"/api/v1/scans/{scan.pk}/hl7/"))

    pid = message.oru_r01_patient_result.oru_r01_patient.pid
    assert pid.pid_5.value == "সুমি দাস \\S\\ Ødegård \\T\\ Co\\R\\\\E\\"
    assert pid.pid_3.value.startswith("00\\F\\77^")
    assert _observations(message)["READING"]["notes"][1] == "Line one line \\F\\ two"
    assert "110180" not in _observations(message)
    assert message.oru_r01_patient_result.oru_r01_order_observation.obr.obr_18.value == ""
    assert "Line one" in text and "Line one\n" not in text


def test_another_organizations_scan_is_404(api_client, other_organization, other_clinician, active_model_version):
    theirs = _dicom_scan(PatientFactory(organization=other_organization, mrn="00999"), other_clinician)
    _result(theirs)

    assert api_client.get(f"/api/v1/scans/{theirs.pk}/hl7/").status_code == 404
    assert token_client(other_clinician).get(f"/api/v1/scans/{theirs.pk}/hl7/").status_code == 200


def test_a_result_that_needs_review_says_why_in_the_first_note_of_its_class(api_client, patient, clinician,
                                                                            active_model_version):
    scan = _dicom_scan(patient, clinician)
    _result(scan, top=0.41)  # below the confidence threshold

    message, text = _message(api_client.get(f"/api/v1/scans/{scan.pk}/hl7/"))

    [notes] = [o.children for o in message.oru_r01_patient_result.oru_r01_order_observation.oru_r01_observation
               if o.obx.obx_3.obx_3_1.value == "AI-CLASS"]
    [nte] = [child for child in notes if child.name == "NTE"]
    assert nte.nte_1.value == "1" and nte.nte_3.value.startswith("Needs review.")
