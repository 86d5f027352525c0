"""End to end: a real Celery worker process diagnoses a real CT slice uploaded through the service.

Runs against whatever the settings point at: SQLite and the filesystem broker by default, PostgreSQL
and Redis when DATABASE_URL and REDIS_URL are set (as in CI).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from django.core.files import File

from diagnosis import services
from diagnosis.models import Prediction

from .celery_worker import celery_worker, require_shipped_model, wait_until_final
from .factories import PatientFactory

pytestmark = pytest.mark.integration


@pytest.fixture
def shipped_model() -> Path:
    return require_shipped_model()


@pytest.fixture
def worker(transactional_db, shipped_model, ct_slice, inference_queue, tmp_path):
    """A Celery worker process on the test database, media folder and broker; stopped after the test."""
    log_path = tmp_path / "worker.log"
    with celery_worker(shipped_model, log_path) as process:
        yield process, log_path


def upload(path: Path, patient, user):
    with path.open("rb") as handle:
        return services.scan_create(patient=patient, file=File(handle, name=path.name), uploaded_by=user)


def test_a_real_worker_diagnoses_real_ct_slices_and_loads_the_model_once(
    worker, shipped_model, ct_slice, organization, clinician
):
    process, log_path = worker
    version = services.model_version_register(path=shipped_model, activate=True)
    patient = PatientFactory(organization=organization)
    neighbours = sorted(ct_slice.parent.glob("*.jpg"))[:2]

    # scan_create commits and sends the task on commit; nothing here calls the task directly.
    scans = [upload(path, patient, clinician) for path in neighbours]
    predictions = wait_until_final([s.latest_prediction.pk for s in scans], process, log_path)

    log = log_path.read_text()
    for prediction in predictions:
        assert prediction.status == Prediction.Status.DONE, prediction.failure_reason
        assert prediction.label in version.class_names
        assert set(prediction.probabilities) == set(version.class_names)
        assert math.isclose(sum(prediction.probabilities.values()), 1.0, abs_tol=1e-3)
        assert prediction.started_at and prediction.finished_at and prediction.inference_ms is not None
        assert prediction.model_version == version
        # The Grad-CAM overlay comes with the diagnosis, next to the scan's image.
        assert prediction.heatmap.name.endswith(f"-p{prediction.pk}-heatmap.png"), prediction.heatmap.name
    assert log.count("Loaded model version") == 1, log[-5000:]


def test_a_real_worker_notifies_the_hospital_system_of_the_result(
    transactional_db, shipped_model, ct_slice, inference_queue, tmp_path, organization, clinician, boss, receiver,
    settings,
):
    import hashlib
    import hmac

    settings.KIDNEYWEB_WEBHOOK_ALLOW_HTTP = True  # the receiver here is plain http on localhost
    secret = services.webhook_set(organization=organization, url=receiver.url, by=boss)
    services.model_version_register(path=shipped_model, activate=True)
    log_path = tmp_path / "worker.log"
    with celery_worker(shipped_model, log_path, queues="inference,celery") as process:
        scan = upload(ct_slice, PatientFactory(organization=organization), clinician)
        [prediction] = wait_until_final([scan.latest_prediction.pk], process, log_path)
        assert receiver.arrived.wait(60), log_path.read_text()[-5000:]

    [request] = receiver.received
    assert request.headers["x-kidneyweb-signature"] == "sha256=" + hmac.new(
        secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.json["prediction"]["label"] == prediction.label and request.json["scan"]["id"] == scan.pk


def test_a_real_worker_stores_the_result_of_a_dicom_slice_in_the_hospitals_archive(
    transactional_db, shipped_model, ct_slice, inference_queue, tmp_path, organization, clinician, boss, orthanc,
    settings,
):
    import time

    import numpy as np
    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from diagnosis.models import PacsDelivery
    from mlcore.synthetic import dicom_bytes

    from . import orthanc as pacs

    settings.KIDNEYWEB_PACS_ALLOW_HTTP = True  # the archive here is plain http on localhost
    services.pacs_set(organization=organization, url=orthanc.dicomweb, username=pacs.USERNAME, password=pacs.PASSWORD,
                      send_reports=True, by=boss)
    services.model_version_register(path=shipped_model, activate=True)
    patient = PatientFactory(organization=organization, mrn="PACS-0001")
    # A real CT slice as the scanner's archive would send it: 8-bit display values under a CT header.
    pixels = np.asarray(Image.open(ct_slice).convert("L"), dtype=np.uint8)
    data = dicom_bytes(pixels, patient_id=patient.mrn, window=None, slope=1.0, intercept=0.0)
    log_path = tmp_path / "worker.log"
    with celery_worker(shipped_model, log_path, queues="inference,celery") as process:
        scan = services.scan_create(patient=patient, file=SimpleUploadedFile("IM1.dcm", data), uploaded_by=clinician)
        [prediction] = wait_until_final([scan.latest_prediction.pk], process, log_path)
        deadline = time.monotonic() + 60
        # The capture and the structured report, each by its own task.
        while PacsDelivery.objects.filter(prediction=prediction, status="pending").exists():
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-5000:]
            time.sleep(0.5)

    assert prediction.status == Prediction.Status.DONE, prediction.failure_reason
    capture = PacsDelivery.objects.get(prediction=prediction, kind=PacsDelivery.Kind.CAPTURE)
    report = PacsDelivery.objects.get(prediction=prediction, kind=PacsDelivery.Kind.REPORT)
    assert [d.status for d in (capture, report)] == ["delivered"] * 2, [capture.last_error, report.last_error]
    stored = orthanc.instance_tags(capture.sop_instance_uid)
    assert stored is not None and stored["StudyInstanceUID"] == scan.dicom_study_uid
    assert stored["PatientID"] == "PACS-0001"
    from diagnosis.dicom_report import finding_code

    # The report codes what the model made of this slice.
    [measurements] = [item for item in orthanc.instance_tags(report.sop_instance_uid)["ContentSequence"]
                      if item["ValueType"] == "CONTAINER"]  # Imaging Measurements
    [group] = measurements["ContentSequence"]
    [finding] = [item for item in group["ContentSequence"]
                 if item["ConceptNameCodeSequence"][0]["CodeMeaning"] == "Finding"]
    expected = "82334004" if prediction.out_of_scope else finding_code(prediction.label).value  # Indeterminate
    assert finding["ConceptCodeSequence"][0]["CodeValue"] == expected


def test_a_real_worker_ends_the_replaced_versions_alert_of_unusual_uploads_when_another_is_activated(
    transactional_db, shipped_model, tmp_path, organization
):
    import time

    from diagnosis.models import InputsAlert

    from . import brokerq
    from .test_selectors_performance import carded_version, results

    first = carded_version(is_active=True)
    results(organization, first, count=60, out_of_scope=3)
    services.inputs_alerts_judge()
    assert InputsAlert.objects.filter(cleared_at__isnull=True).count() == 1
    brokerq.drain("celery")
    log_path = tmp_path / "worker.log"

    with celery_worker(shipped_model, log_path, queues="celery") as process:
        services.model_version_activate(model_version=carded_version())  # commits at once here: the task is sent
        deadline = time.monotonic() + 60
        while InputsAlert.objects.filter(cleared_at__isnull=True).exists() and time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()[-5000:]
            time.sleep(0.5)

    alert = InputsAlert.objects.get()
    assert alert.ended == InputsAlert.Ended.NOT_ACTIVE, log_path.read_text()[-5000:]
    assert "diagnosis.tasks.judge_inputs" in log_path.read_text()


def test_a_real_worker_deletes_an_erased_records_images_and_heat_maps_after_the_erasure(
    transactional_db, shipped_model, ct_slice, inference_queue, tmp_path, organization, clinician, boss, settings,
):
    import time

    from diagnosis.models import PatientErasure

    services.model_version_register(path=shipped_model, activate=True)
    patient = PatientFactory(organization=organization, mrn="ERASE-1")
    kept = upload(ct_slice, PatientFactory(organization=organization), clinician)
    log_path = tmp_path / "worker.log"
    media = Path(settings.MEDIA_ROOT)
    with celery_worker(shipped_model, log_path, queues="inference,celery") as process:
        scan = upload(ct_slice, patient, clinician)
        wait_until_final([scan.latest_prediction.pk, kept.latest_prediction.pk], process, log_path)
        files = [media / scan.image.name, media / Prediction.objects.get(scan=scan).heatmap.name]
        assert all(path.is_file() for path in files)

        # The erasure commits here; the worker deletes the files after it, as its own task.
        erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn="ERASE-1")
        deadline = time.monotonic() + 60
        while PatientErasure.objects.get(pk=erasure.pk).files_removed_at is None:
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-5000:]
            time.sleep(0.5)

    assert [path for path in files if path.exists()] == [], log_path.read_text()[-3000:]
    assert (media / kept.image.name).is_file() and (media / Prediction.objects.get(scan=kept).heatmap.name).is_file()
    assert "remove_erased_files" in log_path.read_text()
    assert PatientErasure.objects.get(pk=erasure.pk).files == []


def test_a_real_worker_on_the_exports_queue_builds_a_whole_record_export(
    transactional_db, shipped_model, ct_slice, inference_queue, tmp_path, organization, clinician, boss,
):
    import io
    import time
    import zipfile

    from diagnosis.models import RecordExport

    inference_queue.drain("exports")
    services.model_version_register(path=shipped_model, activate=True)
    patient = PatientFactory(organization=organization, mrn="EXPORT-1")
    scan = upload(ct_slice, patient, clinician)
    # Committed here: the task goes to the exports queue (settings.CELERY_TASK_ROUTES), not the inference one.
    export = services.record_export_request(patient=patient, user=boss, base_url="http://testserver/")
    log_path = tmp_path / "worker.log"
    with celery_worker(shipped_model, log_path, queues="exports") as process:
        deadline = time.monotonic() + 90
        while RecordExport.objects.get(pk=export.pk).is_pending:
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-5000:]
            time.sleep(0.5)

    built = RecordExport.objects.get(pk=export.pk)
    assert built.status == RecordExport.Status.DONE, (built.error, log_path.read_text()[-3000:])
    with built.file.open("rb") as handle:
        archive = zipfile.ZipFile(io.BytesIO(handle.read()))
    with scan.image.open("rb") as stored:
        assert archive.read(f"scans/{scan.pk}/slice.jpg") == stored.read()
    assert "build_record_export" in log_path.read_text()


def test_a_real_worker_sends_the_result_to_the_record_system_as_hl7(
    transactional_db, shipped_model, ct_slice, inference_queue, tmp_path, organization, clinician, boss, settings,
):
    import time

    from hl7apy.parser import parse_message

    from diagnosis.models import Hl7Delivery

    from . import mllp_receiver

    listener, server = mllp_receiver.start()
    settings.KIDNEYWEB_HL7_ALLOW_PLAIN = True  # the listener here is plain MLLP on localhost
    services.hl7_feed_set(organization=organization, address=listener.address, by=boss)
    services.model_version_register(path=shipped_model, activate=True)
    log_path = tmp_path / "worker.log"
    try:
        with celery_worker(shipped_model, log_path, queues="inference,celery") as process:
            scan = upload(ct_slice, PatientFactory(organization=organization, mrn="HL7-0001"), clinician)
            [prediction] = wait_until_final([scan.latest_prediction.pk], process, log_path)
            deadline = time.monotonic() + 60
            while Hl7Delivery.objects.filter(scan=scan, status="pending").exists():  # until the ACK is recorded
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-5000:]
                time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()

    [sent] = listener.received
    delivery = Hl7Delivery.objects.get(scan=scan)
    assert (delivery.status, delivery.ack_code) == ("delivered", "AA"), delivery.last_error
    message = parse_message(sent)
    assert message.oru_r01_patient_result.oru_r01_patient.pid.pid_3.value.startswith("HL7-0001^")
    group = message.oru_r01_patient_result.oru_r01_order_observation
    [found] = [o.obx.obx_5.value for o in group.oru_r01_observation if o.obx.obx_3.obx_3_1.value == "AI-CLASS"]
    # What the model made of this slice, as the record system files it.
    assert found.startswith("82334004^") if prediction.out_of_scope else f"^{prediction.label}^99KIDNEYWEB" in found
