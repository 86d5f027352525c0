"""AI results sent to the organization's archive (PACS): each finished result of a DICOM slice is stored, as its
capture, in a real Orthanc through DICOMweb STOW-RS; a refusal is final with the archive's reason, an archive that
does not answer is tried again, and an administrator sends it again once the cause is fixed."""

import datetime
import io
import json
import socket

import numpy as np
import pydicom
import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from diagnosis import services
from diagnosis.models import PacsDelivery, Prediction, StaffChange
from diagnosis.services import outbound
from mlcore.synthetic import dicom_bytes

from . import orthanc as pacs
from .factories import DonePredictionFactory, PatientFactory, ScanFactory

STUDY = "1.2.826.0.1.3680043.8.498.72"


@pytest.fixture
def allow_http(settings):
    settings.KIDNEYWEB_PACS_ALLOW_HTTP = True  # the archives here are plain http on localhost


@pytest.fixture
def patient(organization, active_model_version):
    return PatientFactory(organization=organization, name="Grace Hopper", mrn="00123456",
                          birth_date=datetime.date(1906, 12, 9), sex="F")


def _dicom_scan(patient, clinician, seed=0):
    pixels = np.random.default_rng(seed).integers(900, 1300, (64, 64), dtype=np.uint16)
    data = dicom_bytes(pixels, patient_id=patient.mrn, study_uid=STUDY, accession_number=f"A-{seed}",
                       study_date="20261205", study_time="093015", study_description="CT ABDOMEN")
    return services.scan_create(patient=patient, file=SimpleUploadedFile("IM1.dcm", data), uploaded_by=clinician)


def _overlay() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 64), (255, 0, 0, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def _finished(scan, django_capture_on_commit_callbacks, label="Stone"):
    """Finish the scan's queued diagnosis as the worker does; returns the delivery it queued and the callbacks."""
    prediction = scan.predictions.get()
    prediction.heatmap.save("h.png", ContentFile(_overlay()), save=False)
    prediction.status, prediction.label, prediction.confidence = Prediction.Status.DONE, label, 0.91
    prediction.probabilities = {"Cyst": 0.03, "Normal": 0.03, "Stone": 0.91, "Tumor": 0.03}
    prediction.finished_at = datetime.datetime.now(datetime.timezone.utc)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        prediction.save()
        delivery = services.pacs_result_send(prediction=prediction)
    return delivery, callbacks


@pytest.fixture
def archived(organization, boss, orthanc, allow_http):
    return services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME,
                             password=pacs.PASSWORD, by=boss)


def test_an_address_must_be_https_and_credentials_are_kept_unless_changed_and_each_change_is_recorded(
        organization, boss, settings):
    with pytest.raises(ValidationError, match="starting with https://"):
        services.pacs_set(organization=organization, url="http://pacs.example.org/dicom-web", by=boss)
    with pytest.raises(ValidationError, match="password of this user"):
        services.pacs_set(organization=organization, url="https://pacs.example.org/dicom-web", username="ai", by=boss)
    with pytest.raises(ValidationError, match="colon"):
        services.pacs_set(organization=organization, url="https://pacs.example.org/dicom-web", username="a:i",
                          password="x", by=boss)

    # The STOW-RS address itself is taken as its service's base.
    services.pacs_set(organization=organization, url="https://pacs.example.org/dicom-web/studies/", username="ai",
                      password="s3cret", by=boss)
    services.pacs_set(organization=organization, url="https://pacs2.example.org/dicom-web", username="ai", by=boss)
    organization.refresh_from_db()
    assert (organization.pacs_url, organization.pacs_username, organization.pacs_password) == (
        "https://pacs2.example.org/dicom-web", "ai", "s3cret")  # the password stays for the same user
    with pytest.raises(ValidationError, match="password of this user"):
        services.pacs_set(organization=organization, url="https://pacs2.example.org/dicom-web", username="other",
                          by=boss)

    settings.KIDNEYWEB_PACS_ALLOW_HTTP = True
    services.pacs_set(organization=organization, url="http://pacs.internal/dicom-web", by=boss)
    organization.refresh_from_db()
    assert (organization.pacs_url, organization.pacs_username, organization.pacs_password) == (
        "http://pacs.internal/dicom-web", "", "")
    services.pacs_set(organization=organization, url="", by=boss)
    organization.refresh_from_db()
    assert organization.pacs_url == ""
    assert [c.detail for c in StaffChange.objects.order_by("id")] == [
        "AI results to the archive at pacs.example.org as ai", "AI results to the archive at pacs2.example.org as ai",
        "AI results to the archive at pacs.internal without authentication", "AI results to the archive off"]


def test_a_finished_result_of_a_dicom_slice_is_stored_in_the_archive_in_its_study_under_the_patient(
        archived, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    delivery, callbacks = _finished(scan, django_capture_on_commit_callbacks)
    assert delivery.status == PacsDelivery.Status.PENDING and len(callbacks) == 1  # sent once it commits
    assert orthanc.instance_tags(delivery.sop_instance_uid) is None

    delivered = services.pacs_deliver(delivery_id=delivery.pk)

    assert (delivered.status, delivered.response_status, delivered.attempts, delivered.last_error) == (
        PacsDelivery.Status.DELIVERED, 200, 1, "")
    stored = orthanc.instance_tags(delivery.sop_instance_uid)
    assert stored is not None, "the archive does not hold the result"
    assert (stored["StudyInstanceUID"], stored["PatientID"], stored["PatientName"]) == (STUDY, "00123456", "Grace Hopper")
    assert (stored["SOPClassUID"], stored["Modality"], stored["SeriesNumber"]) == (
        "1.2.840.10008.5.1.4.1.1.7", "OT", "9901")
    # Done is done: a repeated task sends nothing more.
    assert services.pacs_deliver(delivery_id=delivery.pk).attempts == 1


def test_a_result_is_queued_once_and_only_for_a_dicom_slice_of_an_organization_with_an_archive(
        organization, boss, orthanc, allow_http, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    assert _finished(scan, django_capture_on_commit_callbacks)[0] is None  # no archive set

    services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME,
                      password=pacs.PASSWORD, by=boss)
    png = ScanFactory(patient=patient)
    prediction = DonePredictionFactory(scan=png)
    assert services.pacs_result_send(prediction=prediction) is None  # no study to file it in

    other = _dicom_scan(patient, clinician, seed=1)
    first, _ = _finished(other, django_capture_on_commit_callbacks)
    again = services.pacs_result_send(prediction=first.prediction)  # the same result finishing twice
    assert again.pk == first.pk and PacsDelivery.objects.count() == 1


def test_wrong_credentials_are_final_at_once_and_the_result_is_sent_again_once_they_are_right(
        organization, boss, orthanc, allow_http, patient, clinician, django_capture_on_commit_callbacks):
    services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME, password="wrong",
                      by=boss)
    scan = _dicom_scan(patient, clinician)
    delivery, _ = _finished(scan, django_capture_on_commit_callbacks)

    refused = services.pacs_deliver(delivery_id=delivery.pk)

    assert (refused.status, refused.response_status, refused.attempts) == (PacsDelivery.Status.FAILED, 401, 1)
    assert "The archive answered 401" in refused.last_error and "user name and password" in refused.last_error
    assert orthanc.instance_tags(delivery.sop_instance_uid) is None

    services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME,
                      password=pacs.PASSWORD, by=boss)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.pacs_send_again(delivery=refused, by=boss)
    assert len(callbacks) == 1
    delivered = services.pacs_deliver(delivery_id=delivery.pk)
    assert (delivered.status, delivered.attempts, delivered.sent_again_by) == (PacsDelivery.Status.DELIVERED, 1, boss)
    assert orthanc.instance_tags(delivery.sop_instance_uid) is not None
    with pytest.raises(ValidationError, match="this one is delivered"):
        services.pacs_send_again(delivery=delivered, by=boss)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_archive_that_does_not_answer_is_tried_again_then_given_up_with_the_reason(
        organization, boss, allow_http, patient, clinician, django_capture_on_commit_callbacks):
    services.pacs_set(organization=organization, url=f"http://127.0.0.1:{_closed_port()}/dicom-web", by=boss)
    scan = _dicom_scan(patient, clinician)
    delivery, _ = _finished(scan, django_capture_on_commit_callbacks)

    for _ in range(outbound.MAX_ATTEMPTS - 1):
        with pytest.raises(services.PacsNotDelivered, match="Not reached"):
            services.pacs_deliver(delivery_id=delivery.pk)
    given_up = services.pacs_deliver(delivery_id=delivery.pk)

    assert given_up.status == PacsDelivery.Status.FAILED
    assert given_up.last_error.startswith(f"Gave up after {outbound.MAX_ATTEMPTS} attempts. Not reached")


def _failure(uid: str, code: int) -> bytes:
    return json.dumps({"00081198": {"vr": "SQ", "Value": [{
        "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
        "00081155": {"vr": "UI", "Value": [uid]}, "00081197": {"vr": "US", "Value": [code]}}]}}).encode()


@pytest.mark.parametrize("answer_status", [409, 202])
def test_an_instance_the_archive_refuses_fails_at_once_with_its_failure_reason(
        answer_status, organization, boss, receiver, allow_http, patient, clinician, django_capture_on_commit_callbacks):
    services.pacs_set(organization=organization, url=receiver.url, username="ai", password="pw", by=boss)
    scan = _dicom_scan(patient, clinician)
    delivery, _ = _finished(scan, django_capture_on_commit_callbacks)
    receiver.answers = [(answer_status, _failure(delivery.sop_instance_uid, 0xA900))]

    refused = services.pacs_deliver(delivery_id=delivery.pk)

    assert (refused.status, refused.attempts, refused.response_status) == (PacsDelivery.Status.FAILED, 1, answer_status)
    assert "failure reason 0xa900 (the data set does not match its SOP class)" in refused.last_error
    [request] = receiver.received
    assert request.path == "/kidneyweb/results/studies"
    assert request.headers["content-type"].startswith('multipart/related; type="application/dicom"; boundary=')
    assert request.headers["authorization"] == "Basic YWk6cHc="  # ai:pw
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    [part] = [p for p in request.body.split(b"--" + boundary) if p.strip(b"-\r\n")]
    headers, instance = part.split(b"\r\n\r\n", 1)
    assert b"Content-Type: application/dicom" in headers
    sent = pydicom.dcmread(io.BytesIO(instance.removesuffix(b"\r\n")))
    assert sent.SOPInstanceUID == delivery.sop_instance_uid and sent.StudyInstanceUID == STUDY


def test_a_server_error_is_tried_again_and_a_failure_of_another_instance_is_not_ours(
        organization, boss, receiver, allow_http, patient, clinician, django_capture_on_commit_callbacks):
    services.pacs_set(organization=organization, url=receiver.url, by=boss)
    delivery, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)
    receiver.answers = [503, (202, _failure("1.2.3.4", 0xA700))]

    with pytest.raises(services.PacsNotDelivered, match="The archive answered 503"):
        services.pacs_deliver(delivery_id=delivery.pk)
    delivered = services.pacs_deliver(delivery_id=delivery.pk)

    assert (delivered.status, delivered.attempts) == (PacsDelivery.Status.DELIVERED, 2)
    assert "authorization" not in receiver.received[0].headers  # no user set: no credentials sent


def test_a_withdrawn_scan_or_a_replaced_result_is_not_sent(
        archived, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    withdrawn = _dicom_scan(patient, clinician)
    first, _ = _finished(withdrawn, django_capture_on_commit_callbacks)
    services.scan_withdraw(scan=withdrawn, reason="Wrong patient.", user=clinician)
    replaced = _dicom_scan(patient, clinician, seed=1)
    second, _ = _finished(replaced, django_capture_on_commit_callbacks)
    services.prediction_create(scan=replaced)  # diagnosed again

    assert services.pacs_deliver(delivery_id=first.pk).last_error == "Not sent: the scan was withdrawn as entered in error."
    assert services.pacs_deliver(delivery_id=second.pk).last_error == (
        "Not sent: a newer result of the scan replaced it, and is sent on its own.")
    assert orthanc.instance_tags(first.sop_instance_uid) is None and orthanc.instance_tags(second.sop_instance_uid) is None
    assert services.pacs_send_failed_again(organization=patient.organization, by=clinician) == 0


def test_after_an_outage_every_failed_result_is_sent_again(
        organization, boss, orthanc, allow_http, patient, clinician, django_capture_on_commit_callbacks):
    services.pacs_set(organization=organization, url=f"http://127.0.0.1:{_closed_port()}/dicom-web", by=boss)
    deliveries = [_finished(_dicom_scan(patient, clinician, seed=seed), django_capture_on_commit_callbacks)[0]
                  for seed in range(2)]
    PacsDelivery.objects.update(status=PacsDelivery.Status.FAILED, attempts=6, last_error="Gave up after 6 attempts.")

    services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME,
                      password=pacs.PASSWORD, by=boss)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.pacs_send_failed_again(organization=organization, by=boss) == 2
    assert len(callbacks) == 2

    for delivery in deliveries:
        services.pacs_deliver(delivery_id=delivery.pk)  # as the tasks queued do
    assert {d.status for d in PacsDelivery.objects.all()} == {PacsDelivery.Status.DELIVERED}
    assert all(orthanc.instance_tags(d.sop_instance_uid) is not None for d in deliveries)


def test_a_result_whose_task_was_lost_is_sent_again_by_the_sweep(
        archived, patient, clinician, django_capture_on_commit_callbacks):
    delivery, _ = _finished(_dicom_scan(patient, clinician), django_capture_on_commit_callbacks)
    now = delivery.created_at

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.pacs_resend_lost(now=now + datetime.timedelta(minutes=5)) == []
        assert services.pacs_resend_lost(now=now + datetime.timedelta(minutes=16)) == [delivery.pk]
    assert len(callbacks) == 1
    services.pacs_resend_lost(now=now + datetime.timedelta(days=2))
    delivery.refresh_from_db()
    assert delivery.status == PacsDelivery.Status.FAILED and "within a day" in delivery.last_error


def test_a_review_is_stored_as_a_new_capture_and_replaces_a_result_not_sent_yet(
        archived, orthanc, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    ai_only, _ = _finished(scan, django_capture_on_commit_callbacks)
    services.pacs_deliver(delivery_id=ai_only.pk)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = services.review_create(scan=scan, user=clinician, label="Tumor", prediction_id=ai_only.prediction_id)
    reviewed = PacsDelivery.objects.get(review=first)
    assert len(callbacks) == 1 and reviewed.sop_instance_uid != ai_only.sop_instance_uid
    with django_capture_on_commit_callbacks(execute=False):
        second = services.review_create(scan=scan, user=clinician, label="Stone", prediction_id=ai_only.prediction_id)
    confirmed = PacsDelivery.objects.get(review=second)

    # The first review's capture had not left when the second came: only the current reading goes.
    assert services.pacs_deliver(delivery_id=reviewed.pk).last_error == (
        "Not sent: a newer review of the result replaced it, and is sent on its own.")
    assert services.pacs_deliver(delivery_id=confirmed.pk).status == PacsDelivery.Status.DELIVERED

    assert orthanc.instance_tags(ai_only.sop_instance_uid) is not None  # the AI's own reading stays beside it
    assert orthanc.instance_tags(reviewed.sop_instance_uid) is None
    stored = orthanc.instance_tags(confirmed.sop_instance_uid)
    assert stored is not None and stored["StudyInstanceUID"] == STUDY
    assert services.pacs_send_failed_again(organization=patient.organization, by=clinician) == 0


def test_a_result_reviewed_before_it_left_is_sent_with_its_review_only(
        archived, patient, clinician, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    ai_only, _ = _finished(scan, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        review = services.review_create(scan=scan, user=clinician, label="Stone", prediction_id=ai_only.prediction_id)

    assert services.pacs_deliver(delivery_id=ai_only.pk).last_error == (
        "Not sent: a newer review of the result replaced it, and is sent on its own.")
    assert services.pacs_deliver(delivery_id=PacsDelivery.objects.get(review=review).pk).status == "delivered"


def test_the_result_files_under_the_patient_id_the_archive_holds_the_study_for_not_a_split_study(
        archived, orthanc, organization, clinician, active_model_version, django_capture_on_commit_callbacks):
    # The archive's PatientID keeps leading zeros the record's MRN drops: the same patient to both.
    patient = PatientFactory(organization=organization, name="Alan Turing", mrn="7654321")
    pixels = np.random.default_rng(5).integers(900, 1300, (64, 64), dtype=np.uint16)
    study = "1.2.826.0.1.3680043.8.498.73"
    slice_ = dicom_bytes(pixels, patient_id="0007654321", study_uid=study)
    orthanc.store(slice_)  # the scanner's slice, as the archive holds it
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("IM1.dcm", slice_), uploaded_by=clinician)
    delivery, _ = _finished(scan, django_capture_on_commit_callbacks)

    assert services.pacs_deliver(delivery_id=delivery.pk).status == PacsDelivery.Status.DELIVERED

    assert orthanc.instance_tags(delivery.sop_instance_uid)["PatientID"] == "0007654321"
    studies = [s for s in orthanc.get("/studies?expand") if s["MainDicomTags"]["StudyInstanceUID"] == study]
    assert len(studies) == 1 and len(studies[0]["Series"]) == 2  # the scanner's series and the AI's, in one study


def test_checking_the_connection_says_whether_the_address_and_the_password_work(organization, boss, orthanc, allow_http):
    with pytest.raises(ValidationError, match="Set the archive's address first"):
        services.pacs_check(organization=organization)

    def check(url: str, password: str = pacs.PASSWORD) -> str:
        return services.pacs_check(organization=services.pacs_set(
            organization=organization, url=url, username=pacs.USERNAME, password=password, by=boss))

    assert check(orthanc.dicomweb) == f"The archive answered as {pacs.USERNAME}: its DICOMweb service is reached (200)."
    with pytest.raises(ValidationError,
                       match=r"answered 401 .* Check the credentials set for the archive \(its user name and password"):
        check(orthanc.dicomweb, password="wrong")
    with pytest.raises(ValidationError, match="answered 404 .* Check the archive's DICOMweb address"):
        check(f"{orthanc.base}/no-dicom-web-here")
    with pytest.raises(ValidationError, match="Not reached"):
        check(f"http://127.0.0.1:{_closed_port()}/dicom-web")


def test_a_result_that_cannot_be_queued_is_marked_failed_with_the_reason_and_sent_again_later(
        archived, patient, clinician, broker_down, django_capture_on_commit_callbacks):
    scan = _dicom_scan(patient, clinician)
    with django_capture_on_commit_callbacks(execute=True):
        delivery, _ = _finished(scan, django_capture_on_commit_callbacks)

    delivery.refresh_from_db()
    assert delivery.status == PacsDelivery.Status.FAILED
    assert delivery.last_error.startswith("Not sent: the task broker did not answer")
    assert services.pacs_send_failed_again(organization=patient.organization, by=clinician) == 1


def test_results_that_finished_before_the_archive_was_set_are_sent_once_on_request(
        organization, boss, orthanc, allow_http, patient, clinician, django_capture_on_commit_callbacks):
    plain, reviewed, withdrawn, old = (_dicom_scan(patient, clinician, seed=seed) for seed in range(4))
    for scan in (plain, reviewed, withdrawn, old):
        assert _finished(scan, django_capture_on_commit_callbacks)[0] is None  # no archive yet
    review = services.review_create(scan=reviewed, user=clinician, label="Tumor")
    services.scan_withdraw(scan=withdrawn, reason="Wrong patient.", user=clinician)
    today = timezone.localdate()
    month_ago, two_months_ago = today - datetime.timedelta(days=30), today - datetime.timedelta(days=60)
    Prediction.objects.filter(scan=old).update(finished_at=timezone.now() - datetime.timedelta(days=45))
    DonePredictionFactory(scan=ScanFactory(patient=patient))  # a PNG upload: no study to file it in
    with pytest.raises(ValidationError, match="Set the archive's address first"):
        services.pacs_send_since(organization=organization, since=month_ago, by=boss)
    organization = services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME,
                                     password=pacs.PASSWORD, by=boss)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sent = services.pacs_send_since(organization=organization, since=month_ago, by=boss)

    assert sent == 2 and len(callbacks) == 2
    queued = {d.scan_id: d for d in PacsDelivery.objects.all()}
    assert set(queued) == {plain.pk, reviewed.pk} and queued[reviewed.pk].review == review  # its current reading
    assert services.pacs_deliver(delivery_id=queued[reviewed.pk].pk).status == PacsDelivery.Status.DELIVERED
    assert services.pacs_send_since(organization=organization, since=two_months_ago, by=boss) == 1  # the old one
    assert services.pacs_send_since(organization=organization, since=two_months_ago, by=boss) == 0
    with pytest.raises(ValidationError, match="a day that has passed"):
        services.pacs_send_since(organization=organization, since=today + datetime.timedelta(days=1), by=boss)
    assert StaffChange.objects.filter(detail=f"2 earlier AI results to the archive (since {month_ago:%Y-%m-%d})").exists()


def test_a_result_on_its_way_when_the_patients_record_is_erased_ends_without_an_error_and_is_asked_back(
        organization, boss, receiver, allow_http, patient, clinician, django_capture_on_commit_callbacks,
        monkeypatch):
    services.pacs_set(organization=organization, url=receiver.url, username="ai", password="pw", by=boss)
    scan = _dicom_scan(patient, clinician)
    delivery, _ = _finished(scan, django_capture_on_commit_callbacks)
    post = outbound.post

    def erased_while_sending(*args, **kwargs):
        services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=patient.mrn)
        return post(*args, **kwargs)

    monkeypatch.setattr(outbound, "post", erased_while_sending)

    services.pacs_deliver(delivery_id=delivery.pk)  # no exception: the task ends

    # The archive may have stored it: the erasure's note asks it to delete it.
    (note,) = PacsDelivery.objects.all()
    assert len(receiver.received) == 1 and note.erasure_id is not None
    assert [capture["instance"] for capture in note.rejected] == [delivery.sop_instance_uid]
    assert services.pacs_deliver(delivery_id=delivery.pk) is None
