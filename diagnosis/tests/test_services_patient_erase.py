"""Erasing a patient's data (consent withdrawn, the end of a pilot): nothing that names the person stays, the
images leave storage, other patients lose nothing, and the access log still says who opened the record."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from diagnosis import selectors, services
from diagnosis.dicom_uids import result_instance_uids
from diagnosis.models import (ClassHeatmap, DicomStoreRefusal, PacsDelivery, Patient, PatientAccess, PatientChange,
                              PatientErasure, PatientMerge, Prediction, Review, Scan, WebhookDelivery)
from mlcore.synthetic import dicom_bytes

from .factories import DonePredictionFactory, PacsDeliveryFactory, PatientFactory, ReviewFactory, ScanFactory, image_bytes

NAME, MRN, BORN = "Zebedee Quartermain", "QX-20931", datetime.date(1947, 3, 9)


@pytest.fixture
def patient(organization):
    return PatientFactory(organization=organization, name=NAME, mrn=MRN, birth_date=BORN)


@pytest.fixture
def neighbour(organization):
    return PatientFactory(organization=organization, name="Ada Example", mrn="00123456")


def _dicom_upload(patient: Patient, user, seed: int) -> Scan:
    pixels = np.random.default_rng(seed).integers(0, 2000, size=(48, 48), dtype=np.uint16)
    data = dicom_bytes(pixels, patient_id=patient.mrn, study_uid=f"1.2.826.0.1.3680043.10.9.{seed}",
                       accession_number=f"ACC{seed}", study_description="CT ABDOMEN")
    return services.scan_create(patient=patient, file=SimpleUploadedFile(f"{patient.name}.dcm", data),
                                uploaded_by=user)


def _media_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def _everything_stored() -> str:
    out = io.StringIO()
    call_command("dumpdata", "diagnosis", stdout=out)
    return out.getvalue()


def test_erasing_leaves_nothing_that_names_the_patient_and_deletes_their_images(
    patient, neighbour, clinician, boss, tiny_model_version
):
    scan = _dicom_upload(patient, clinician, seed=7)
    prediction = services.prediction_run(prediction_id=scan.latest_prediction.pk)
    assert prediction.status == Prediction.Status.DONE and prediction.heatmap
    other_class = next(name for name in tiny_model_version.class_names if name != prediction.label)
    class_map = services.class_heatmap_run(
        class_heatmap_id=services.class_heatmap_request(prediction=prediction, class_name=other_class).pk)
    assert class_map.status == ClassHeatmap.Status.DONE and class_map.image
    services.review_create(scan=scan, user=clinician, label="Cyst", comment=f"{NAME} says it hurts",
                           prediction_id=prediction.pk)
    services.patient_update(patient=patient, changed_by=clinician, name=f"{NAME} Jr")
    services.patient_access_record(user=clinician, patient=patient, scan=scan, what=PatientAccess.What.SCAN,
                                   channel=PatientAccess.Channel.WEB)
    PacsDeliveryFactory(prediction=prediction, status=PacsDelivery.Status.DELIVERED,
                        filed_as=[f"{NAME} Jr", MRN, BORN.strftime("%Y%m%d"), "O"])
    DicomStoreRefusal.objects.create(organization=patient.organization, sent_by=clinician, patient_id=f" {MRN} ",
                                     sop_instance_uid="1.2.3.9", failure_code=0xC000, reason="No patient")
    kept_scan = ScanFactory(patient=neighbour, uploaded_by=clinician)
    kept_review = ReviewFactory(prediction=DonePredictionFactory(scan=kept_scan), reviewed_by=clinician)
    patient_files = {scan.image.name, prediction.heatmap.name, class_map.image.name}
    assert patient_files <= _media_files()
    stored = _everything_stored()
    assert MRN in stored and "Quartermain" in stored and scan.dicom_study_uid in stored

    erasure = services.patient_erase(patient=patient, user=boss, reason=" consent  withdrawn on 2026-12-01 ",
                                     confirm_mrn=MRN)

    assert (erasure.scans, erasure.reviews, erasure.archive_results) == (1, 1, 1)
    assert erasure.reason == "consent withdrawn on 2026-12-01" and erasure.patient_id == patient.pk
    assert not Patient.objects.filter(pk=patient.pk).exists()
    assert not Scan.objects.filter(pk=scan.pk).exists() and not Prediction.objects.filter(pk=prediction.pk).exists()
    assert not ClassHeatmap.objects.exists() and not PacsDelivery.objects.exists()
    assert not PatientChange.objects.exists() and not DicomStoreRefusal.objects.exists()
    # The images stay until the worker deletes them after the commit; then they are gone, and others' are not.
    assert patient_files <= _media_files()
    services.erasure_files_remove(erasure_id=erasure.pk)
    assert not patient_files & _media_files()
    stored = _everything_stored()
    for trace in (MRN, "Quartermain", "1947-03-09", "19470309", scan.dicom_study_uid, scan.dicom_instance_uid,
                  "ACC7", "says it hurts", *(Path(name).stem for name in patient_files)):
        assert trace not in stored, trace
    assert kept_scan.image.name in _media_files()
    erasure.refresh_from_db()
    assert erasure.files_removed_at is not None
    # The neighbour lost nothing.
    assert Review.objects.get() == kept_review and Scan.objects.get() == kept_scan
    assert list(selectors.patient_list(user=clinician)) == [neighbour]


def test_the_access_log_keeps_who_opened_the_erased_record_when(patient, neighbour, clinician, boss):
    scan = ScanFactory(patient=patient, uploaded_by=clinician)
    opened = services.patient_access_record(user=clinician, patient=patient, scan=scan, what=PatientAccess.What.IMAGE,
                                            channel=PatientAccess.Channel.API)
    services.patient_access_record(user=clinician, patient=neighbour, what=PatientAccess.What.PATIENT,
                                   channel=PatientAccess.Channel.WEB)

    erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)

    opened.refresh_from_db()
    assert (opened.patient, opened.scan, opened.erasure, opened.user, opened.what) == (
        None, None, erasure, clinician, PatientAccess.What.IMAGE)
    log = list(selectors.organization_accesses(organization=patient.organization))
    assert [(entry.patient_id, entry.erasure_id) for entry in log] == [(None, erasure.pk), (neighbour.pk, None)]
    mine = selectors.member_accesses(organization=patient.organization, member_id=clinician.pk)
    assert {entry.pk for entry in mine} == {entry.pk for entry in log}
    assert "an erased record" in str(opened)


def test_the_records_merged_into_it_are_erased_with_it_and_a_merged_one_is_not_erased_alone(
    patient, clinician, boss, organization
):
    duplicate = PatientFactory(organization=organization, name="Zebedee Quartermian", mrn="ED-5", birth_date=BORN)
    moved = ScanFactory(patient=duplicate, uploaded_by=clinician)
    services.patient_merge(duplicate=duplicate, into=patient, user=boss, reason="registered twice")

    with pytest.raises(ValidationError, match="merged into .* Erase that record"):
        services.patient_erase(patient=Patient.objects.get(pk=duplicate.pk), user=boss, reason="consent withdrawn",
                               confirm_mrn="ED-5")
    assert Patient.objects.count() == 2

    erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)

    assert erasure.merged_ids == [duplicate.pk] and erasure.scans == 1
    assert not Patient.objects.exists() and not Scan.objects.filter(pk=moved.pk).exists()
    assert not PatientMerge.objects.exists()
    assert selectors.patient_erasure_of(user=clinician, pk=duplicate.pk) == erasure
    assert selectors.patient_erasure_of(user=clinician, pk=patient.pk) == erasure


def test_only_an_administrator_erases_with_a_reason_and_the_mrn_and_a_refusal_changes_nothing(
    patient, clinician, boss, other_clinician
):
    scan = ScanFactory(patient=patient, uploaded_by=clinician)

    with pytest.raises(PermissionDenied, match="Only an administrator"):
        services.patient_erase(patient=patient, user=clinician, reason="consent withdrawn", confirm_mrn=MRN)
    with pytest.raises(ValidationError, match="No such patient"):
        services.patient_erase(patient=patient, user=other_clinician, reason="consent withdrawn", confirm_mrn=MRN)
    with pytest.raises(ValidationError, match="Say why the record is erased"):
        services.patient_erase(patient=patient, user=boss, reason="  ", confirm_mrn=MRN)
    with pytest.raises(ValidationError, match="Type the record's MRN exactly") as refused:
        services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn="QX-2093")
    assert list(refused.value.message_dict) == ["mrn"]

    assert Patient.objects.get() == patient and Scan.objects.get() == scan and scan.image.name in _media_files()
    assert not PatientErasure.objects.exists() and not WebhookDelivery.objects.exists()


def test_another_patients_scan_filed_from_an_erased_one_keeps_its_slice_and_readings(
    patient, neighbour, clinician, boss, active_model_version
):
    wrong = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes(seed=3)),
                                 uploaded_by=clinician)
    filed = services.scan_refile(scan=wrong, patient=neighbour, user=clinician, reason="the wrong patient")
    review = ReviewFactory(prediction=DonePredictionFactory(scan=filed), reviewed_by=clinician)

    services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)

    filed.refresh_from_db()
    assert filed.patient == neighbour and filed.refiled_from is None and filed.reviews.get() == review
    assert filed.image.name in _media_files() and filed.image.name != wrong.image.name


def test_the_hospital_system_hears_which_scans_and_archive_results_went_without_the_patients_details(
    patient, clinician, boss, organization, tiny_model_version
):
    organization.webhook_url = "https://his.example.org/hooks"
    organization.save()
    scan = _dicom_upload(patient, clinician, seed=11)
    prediction = services.prediction_run(prediction_id=scan.latest_prediction.pk)
    uids = result_instance_uids(scan=scan)
    assert prediction.status == Prediction.Status.DONE and len(uids) == 2  # the capture and the structured report

    erasure = services.patient_erase(patient=patient, user=boss, reason="end of the pilot", confirm_mrn=MRN)

    delivery = WebhookDelivery.objects.get(event="patient.erased")
    payload = delivery.payload
    assert payload["patient"] == {"id": patient.pk} and payload["scans"] == [scan.pk] and payload["merged"] == []
    assert payload["dicom_result_uids"] == uids and payload["reason"] == "end of the pilot"
    assert payload["erased_by"] == "boss" and payload["erased_at"] == erasure.erased_at.isoformat()
    assert MRN not in str(payload) and "Quartermain" not in str(payload)


def test_a_diagnosis_finishing_after_the_erasure_stores_nothing(patient, clinician, boss, tiny_model_version,
                                                                monkeypatch):
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes(seed=5)),
                                uploaded_by=clinician)
    prediction_id = scan.latest_prediction.pk
    store_heatmap = services.scans._store_heatmap

    def erased_while_drawing(prediction, image_bytes, class_name):
        # The erasure commits between the model's answer and the result's save.
        name = store_heatmap(prediction, image_bytes, class_name)
        services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)
        return name

    monkeypatch.setattr(services.scans, "_store_heatmap", erased_while_drawing)
    before = _media_files()

    assert services.prediction_run(prediction_id=prediction_id) is None

    erasure = PatientErasure.objects.get()
    services.erasure_files_remove(erasure_id=erasure.pk)
    assert _media_files() == before - {scan.image.name}
    assert not Prediction.objects.exists()
    # Delivered again (acks_late), the task finds nothing to do.
    assert services.prediction_run(prediction_id=prediction_id) is None


def test_files_of_an_erasure_whose_task_was_lost_are_queued_again_and_removing_twice_is_harmless(
    patient, clinician, boss, monkeypatch
):
    scan = ScanFactory(patient=patient, uploaded_by=clinician)
    erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)
    queued: list[int] = []
    monkeypatch.setattr(services.erasures, "_enqueue_files_removal", queued.append)

    assert services.erasures_files_resend() == []  # too recent: its own task may still be on its way
    later = timezone.now() + services.erasures.FILES_LOST_AFTER + datetime.timedelta(minutes=1)
    assert services.erasures_files_resend(now=later) == [erasure.pk] == queued

    services.erasure_files_remove(erasure_id=erasure.pk)
    removed_at = PatientErasure.objects.get().files_removed_at
    services.erasure_files_remove(erasure_id=erasure.pk)
    assert PatientErasure.objects.get().files_removed_at == removed_at and scan.image.name not in _media_files()
    assert services.erasures_files_resend(now=later) == []


def test_an_upload_for_a_record_erased_meanwhile_is_refused_and_stores_nothing(patient, clinician, boss,
                                                                              active_model_version):
    stale = Patient.objects.get(pk=patient.pk)
    services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)
    before = _media_files()

    with pytest.raises(ValidationError, match="erased meanwhile"):
        services.scan_create(patient=stale, file=SimpleUploadedFile("s.png", image_bytes(seed=9)),
                             uploaded_by=clinician)

    assert not Scan.objects.exists() and _media_files() == before


def test_other_organizations_do_not_learn_of_an_erasure(patient, boss, other_clinician):
    services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)

    assert selectors.patient_erasure_of(user=other_clinician, pk=patient.pk) is None


def test_the_archives_refusals_naming_the_record_go_with_it_and_others_stay(organization, patient, clinician, boss):
    numbered = PatientFactory(organization=organization, mrn="42", birth_date=BORN)
    services.patient_merge(duplicate=numbered, into=patient, user=boss, reason="registered twice")
    resolved_as = ScanFactory(patient=patient, uploaded_by=clinician)

    def refusal(patient_id: str, **extra) -> DicomStoreRefusal:
        return DicomStoreRefusal.objects.create(organization=organization, sent_by=clinician, patient_id=patient_id,
                                                sop_instance_uid="1.2.3", failure_code=0xC000, reason="No patient",
                                                **extra)

    for patient_id in (" qx-20931", "00042"):  # the record's MRN and the merged one's, as headers vary them
        refusal(patient_id)
    refusal("", resolved_at=timezone.now(), resolved_as=resolved_as)
    others = [refusal("QX-209310"), refusal("420"), refusal("A-42")]

    services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)

    assert set(DicomStoreRefusal.objects.all()) == set(others)


def test_the_slice_uploaded_under_another_record_by_mistake_goes_too_but_not_one_filed_on_for_someone_else(
    organization, patient, neighbour, clinician, boss, active_model_version
):
    # Uploaded for the neighbour by mistake, withdrawn there and filed for the patient: the neighbour's withdrawn
    # scan shows the patient.
    mistaken = services.scan_create(patient=neighbour, file=SimpleUploadedFile("s.png", image_bytes(seed=21)),
                                    uploaded_by=clinician)
    filed = services.scan_refile(scan=mistaken, patient=patient, user=clinician, reason="the wrong patient")
    # Another slice went the same way, then from the patient on to a third person: it is theirs.
    third = PatientFactory(organization=organization, mrn="T-3")
    passed_on = services.scan_create(patient=neighbour, file=SimpleUploadedFile("t.png", image_bytes(seed=22)),
                                     uploaded_by=clinician)
    via = services.scan_refile(scan=passed_on, patient=patient, user=clinician, reason="the wrong patient")
    theirs = services.scan_refile(scan=via, patient=third, user=clinician, reason="the wrong patient again")
    own = ScanFactory(patient=neighbour, uploaded_by=clinician)
    preview = selectors.patient_erasure_preview(patient=patient)
    assert (preview.scans, preview.withdrawn, preview.mistaken) == (3, 2, 1)

    erasure = services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)

    assert not Scan.objects.filter(pk__in=[mistaken.pk, filed.pk, via.pk]).exists() and erasure.scans == 3
    assert set(Scan.objects.filter(patient=neighbour)) == {Scan.objects.get(pk=passed_on.pk), own}
    theirs.refresh_from_db()
    assert theirs.patient == third and theirs.refiled_from is None and theirs.image.name in _media_files()
    assert mistaken.image.name in erasure.files and passed_on.image.name not in erasure.files


def test_a_heat_map_asked_for_before_the_erasure_and_drawn_after_it_is_not_kept(patient, clinician, boss,
                                                                              tiny_model_version, monkeypatch):
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", image_bytes(seed=6)),
                                uploaded_by=clinician)
    prediction = services.prediction_run(prediction_id=scan.latest_prediction.pk)
    other_class = next(name for name in tiny_model_version.class_names if name != prediction.label)
    asked = services.class_heatmap_request(prediction=prediction, class_name=other_class)
    overlay_png = services.heatmaps.ml.overlay_png

    def erased_while_drawing(gradcam):
        # The erasure commits while the worker draws the map, before it is stored.
        services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn=MRN)
        return overlay_png(gradcam)

    monkeypatch.setattr(services.heatmaps.ml, "overlay_png", erased_while_drawing)
    before = _media_files()

    assert services.class_heatmap_run(class_heatmap_id=asked.pk) is None

    assert _media_files() == before and not ClassHeatmap.objects.exists()
