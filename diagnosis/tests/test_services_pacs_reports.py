"""Structured reports to the archive: where the organization asks for them, each finished result (and each review of
it) goes to a real Orthanc as a DICOM SR beside its capture, by DICOMweb or C-STORE; a withdrawal's rejection note
names both; reports asked for later are sent for earlier results without sending their captures again."""

import datetime
import shutil
import subprocess

import pytest

from diagnosis import services
from diagnosis.dicom_export import SECONDARY_CAPTURE
from diagnosis.dicom_rejection import delivery_note
from diagnosis.dicom_report import COMPREHENSIVE_SR
from diagnosis.dicom_uids import capture_uids, report_uids
from diagnosis.models import PacsDelivery, Scan, StaffChange

from . import orthanc as pacs
from .test_services_pacs import STUDY, _dicom_scan, _finished, allow_http, archived, patient  # noqa: F401 (fixtures)


@pytest.fixture
def reporting(organization, boss, orthanc, allow_http):
    return services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME,
                             password=pacs.PASSWORD, send_reports=True, by=boss)


def _report_of(scan, review=None) -> PacsDelivery:
    return PacsDelivery.objects.get(scan=scan, kind=PacsDelivery.Kind.REPORT, review=review)


def test_each_result_and_review_goes_to_the_archive_as_a_report_beside_its_capture(
        reporting, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)

    capture, callbacks = _finished(scan, django_capture_on_commit_callbacks)

    report = _report_of(scan)
    assert len(callbacks) == 2  # each sent by its own task once the result commits
    assert (capture.kind, report.kind, report.prediction_id) == ("capture", "report", capture.prediction_id)
    assert report.sop_instance_uid == report_uids(scan, capture.prediction)[1]
    assert [services.pacs_deliver(delivery_id=d.pk).status for d in (capture, report)] == ["delivered"] * 2
    stored = orthanc.instance_tags(report.sop_instance_uid)
    assert (stored["SOPClassUID"], stored["Modality"], stored["StudyInstanceUID"]) == (COMPREHENSIVE_SR, "SR", STUDY)
    assert (stored["PatientID"], stored["VerificationFlag"]) == ("00123456", "UNVERIFIED")
    assert PacsDelivery.objects.get(pk=report.pk).filed_as == ["Grace Hopper", "00123456", "19061209", "F"]

    with django_capture_on_commit_callbacks(execute=False):
        review = services.review_create(scan=scan, label="Tumor", user=clinician)
    reviewed = _report_of(scan, review)
    assert services.pacs_deliver(delivery_id=reviewed.pk).status == PacsDelivery.Status.DELIVERED
    assert orthanc.instance_tags(reviewed.sop_instance_uid)["VerificationFlag"] == "VERIFIED"
    assert PacsDelivery.objects.filter(review=review).count() == 2  # its capture and its report


def test_without_reports_asked_for_only_the_capture_goes(
        archived, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)

    _, callbacks = _finished(scan, django_capture_on_commit_callbacks)

    assert len(callbacks) == 1
    assert list(PacsDelivery.objects.filter(scan=scan).values_list("kind", flat=True)) == ["capture"]


def test_a_slice_whose_header_named_no_instance_gets_its_capture_only(
        reporting, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    Scan.objects.filter(pk=scan.pk).update(dicom_instance_uid="")
    scan.refresh_from_db()

    _finished(scan, django_capture_on_commit_callbacks)

    assert list(PacsDelivery.objects.filter(scan=scan).values_list("kind", flat=True)) == ["capture"]


def test_a_withdrawal_rejects_the_report_with_the_capture_and_the_note_names_it_as_a_report(
        reporting, orthanc, patient, clinician, django_capture_on_commit_callbacks, tmp_path):
    scan = _dicom_scan(patient, clinician)
    capture, _ = _finished(scan, django_capture_on_commit_callbacks)
    report = _report_of(scan)
    for delivery in (capture, report):
        services.pacs_deliver(delivery_id=delivery.pk)

    services.scan_withdraw(scan=scan, user=clinician, reason="Wrong patient.")

    note = PacsDelivery.objects.get(scan=scan, kind=PacsDelivery.Kind.REJECTION)
    prediction = capture.prediction
    assert note.rejected == [
        {"series": capture_uids(scan, prediction)[0], "instance": capture.sop_instance_uid, "class": SECONDARY_CAPTURE},
        {"series": report_uids(scan, prediction)[0], "instance": report.sop_instance_uid, "class": COMPREHENSIVE_SR}]
    assert services.pacs_deliver(delivery_id=note.pk).status == PacsDelivery.Status.DELIVERED
    tags = orthanc.instance_tags(note.sop_instance_uid)
    listed = {item["ReferencedSOPSequence"][0]["ReferencedSOPInstanceUID"]: item["ValueType"]
              for item in tags["ContentSequence"][1:]}
    assert listed == {capture.sop_instance_uid: "IMAGE", report.sop_instance_uid: "COMPOSITE"}
    validator = shutil.which("dciodvfy")
    if validator is None:
        pytest.skip("needs dciodvfy (Debian package dicom3tools; .ci/run installs it) for the rest")
    (tmp_path / "note.dcm").write_bytes(delivery_note(note))
    checked = subprocess.run([validator, str(tmp_path / "note.dcm")], capture_output=True, text=True, timeout=60)
    lines = (checked.stdout + checked.stderr).splitlines()
    assert [line for line in lines if line.startswith("Error")] == [], lines


def test_reports_asked_for_later_are_sent_for_earlier_results_without_their_captures_again(
        archived, organization, boss, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    capture, _ = _finished(scan, django_capture_on_commit_callbacks)
    services.pacs_deliver(delivery_id=capture.pk)

    organization = services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME,
                                      send_reports=True, by=boss)  # the password kept
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = services.pacs_send_since(organization=organization, since=datetime.date.today(), by=boss)

    assert (queued, len(callbacks)) == (1, 1)
    assert services.pacs_deliver(delivery_id=_report_of(scan).pk).status == PacsDelivery.Status.DELIVERED
    assert PacsDelivery.objects.filter(scan=scan, kind=PacsDelivery.Kind.CAPTURE).count() == 1
    assert services.pacs_send_since(organization=organization, since=datetime.date.today(), by=boss) == 0
    assert StaffChange.objects.filter(organization=organization,
                                      detail__startswith="AI results with structured reports to the archive").exists()


def test_a_report_goes_by_c_store_to_an_archive_that_speaks_dimse_only(
        organization, boss, orthanc, allow_http, patient, clinician, django_capture_on_commit_callbacks):
    services.pacs_set(organization=organization, url=orthanc.dimse, send_reports=True, by=boss)
    scan = _dicom_scan(patient, clinician, seed=3)
    _finished(scan, django_capture_on_commit_callbacks)

    delivered = services.pacs_deliver(delivery_id=_report_of(scan).pk)

    assert (delivered.status, delivered.last_error) == (PacsDelivery.Status.DELIVERED, "")
    assert orthanc.instance_tags(delivered.sop_instance_uid)["SOPClassUID"] == COMPREHENSIVE_SR
