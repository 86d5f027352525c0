import math
import os

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from diagnosis.models import Prediction, Scan
from diagnosis.tasks import predict_scan
from mlcore.synthetic import dicom_bytes

from .factories import CLASS_NAMES, PatientFactory, ScanFactory, image_bytes

URL = "/api/v1/scans/"


@pytest.fixture
def patient(organization):
    return PatientFactory(organization=organization)


def upload(api_client, patient, data=None, name="slice.png"):
    image = SimpleUploadedFile(name, image_bytes("PNG") if data is None else data)
    return api_client.post(URL, {"patient": patient.pk, "image": image}, format="multipart")


def test_anonymous_requests_get_401(db):
    assert APIClient().get(URL).status_code == 401
    assert APIClient().post(URL, {}).status_code == 401


def test_create_answers_201_with_the_id_and_the_queued_prediction(api_client, patient, active_model_version):
    response = upload(api_client, patient)

    assert response.status_code == 201
    body = response.json()
    scan = Scan.objects.get(pk=body["id"])
    assert scan.patient == patient and body["patient"] == patient.pk
    assert body["prediction"]["status"] == "queued"
    assert body["prediction"]["model_version"] == active_model_version.name
    assert body["format"] == "PNG" and body["image_url"].endswith(f"/api/v1/scans/{scan.pk}/image/")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"plain text", "not a PNG, JPEG or DICOM"),
        (b"", "empty"),
        (image_bytes("JPEG", (128, 128), "RGB")[:900], "truncated or corrupt"),
        (image_bytes("GIF"), "not a PNG, JPEG or DICOM"),
    ],
)
def test_a_refused_upload_answers_400_with_a_message_and_stores_nothing(
    api_client, patient, active_model_version, data, message
):
    response = upload(api_client, patient, data)

    assert response.status_code == 400
    assert message in response.json()["image"][0]
    assert not Scan.objects.exists() and not Prediction.objects.exists()


def test_a_dicom_slice_is_stored_as_its_windowed_png_and_diagnosed_like_one(api_client, patient, active_model_version):
    stored = np.tile(np.linspace(0, 2000, 64).astype(np.uint16), (48, 1))
    response = upload(api_client, patient, dicom_bytes(stored, patient_id=patient.mrn), name="IM0001.dcm")

    assert response.status_code == 201
    body = response.json()
    scan = Scan.objects.get(pk=body["id"])
    assert (body["format"], scan.width, scan.height, scan.original_filename) == ("PNG", 64, 48, "IM0001.dcm")
    assert api_client.get(body["image_url"])["Content-Type"] == "image/png"
    assert body["prediction"]["status"] == "queued"


def test_a_dicom_slice_compressed_as_archives_store_it_is_stored_like_the_uncompressed_one(
        api_client, patient, active_model_version):
    from PIL import Image
    from pydicom.uid import JPEGLosslessSV1

    stored = np.random.default_rng(3).integers(900, 1300, (48, 64)).astype(np.uint16)
    plain = upload(api_client, patient, dicom_bytes(stored, patient_id=patient.mrn), name="IM0001.dcm")
    # Another patient: for the same one, the identical slice would be refused as already stored.
    other = PatientFactory(organization=patient.organization)
    compressed = upload(api_client, other, dicom_bytes(stored, transfer_syntax=JPEGLosslessSV1, patient_id=other.mrn), name="IM0002.dcm")

    assert (plain.status_code, compressed.status_code) == (201, 201)
    images = []
    for body in (plain.json(), compressed.json()):
        with Scan.objects.get(pk=body["id"]).image.open("rb") as handle, Image.open(handle) as image:
            images.append(np.asarray(image))
    assert np.array_equal(images[0], images[1]) and len(np.unique(images[0])) > 50
    assert compressed.json()["prediction"]["status"] == "queued"


def test_a_dicom_slice_of_another_patient_answers_400_and_stores_nothing(api_client, patient, active_model_version):
    response = upload(api_client, patient, dicom_bytes(np.zeros((16, 16), np.uint16), patient_id="SOMEONE-ELSE"),
                      name="IM0001.dcm")

    assert response.status_code == 400
    assert "'SOMEONE-ELSE'" in response.json()["image"][0] and patient.mrn in response.json()["image"][0]
    assert not Scan.objects.exists()


def test_a_multi_frame_dicom_answers_400_and_stores_nothing(api_client, patient, active_model_version):
    response = upload(api_client, patient, dicom_bytes(np.zeros((2, 16, 16), np.uint16)), name="series.dcm")

    assert response.status_code == 400
    assert response.json()["image"][0] == "The DICOM file cannot be used: it holds 2 frames; upload one slice at a time."
    assert not Scan.objects.exists()


def test_an_oversized_upload_answers_400(api_client, patient, active_model_version, settings):
    settings.KIDNEYWEB_MAX_UPLOAD_BYTES = 50

    response = upload(api_client, patient)

    assert response.status_code == 400 and "limit" in response.json()["image"][0]


def test_a_body_far_over_the_limit_is_refused_from_its_declared_length(api_client, patient, active_model_version, settings):
    settings.KIDNEYWEB_MAX_UPLOAD_BYTES = 1000

    response = upload(api_client, patient, data=image_bytes("PNG") + os.urandom(200_000))

    assert response.status_code == 400
    assert "upload is larger than" in response.json()["image"][0]
    assert not Scan.objects.exists()


def test_an_image_over_the_pixel_limit_answers_400(api_client, patient, active_model_version, settings):
    settings.KIDNEYWEB_MAX_IMAGE_PIXELS = 100

    response = upload(api_client, patient)

    assert response.status_code == 400 and "pixels" in response.json()["image"][0]


def test_missing_fields_answer_400(api_client, active_model_version):
    response = api_client.post(URL, {}, format="multipart")

    assert response.status_code == 400
    assert set(response.json()) == {"patient", "image"}


def test_uploading_for_another_organizations_patient_answers_400_with_a_message(
    api_client, other_organization, active_model_version
):
    theirs = PatientFactory(organization=other_organization)

    response = upload(api_client, theirs)

    assert response.status_code == 400
    assert "No patient with id" in response.json()["patient"][0]
    assert not Scan.objects.exists()


def test_without_an_active_model_the_upload_answers_503_and_stores_nothing(api_client, patient):
    response = upload(api_client, patient)

    assert response.status_code == 503
    assert "No diagnosis model is active" in response.json()["detail"]
    assert not Scan.objects.exists()


def test_list_is_tenant_filtered_and_filterable_by_patient(api_client, patient, organization, other_organization):
    mine = ScanFactory(patient=patient)
    sibling = ScanFactory(patient=PatientFactory(organization=organization))
    ScanFactory(patient=PatientFactory(organization=other_organization))

    everything = {s["id"] for s in api_client.get(URL).json()["results"]}
    of_patient = [s["id"] for s in api_client.get(URL, {"patient": patient.pk}).json()["results"]]

    assert everything == {mine.pk, sibling.pk}
    assert of_patient == [mine.pk]


def test_filtering_by_another_organizations_patient_lists_nothing(api_client, other_organization):
    theirs = ScanFactory(patient=PatientFactory(organization=other_organization))

    assert api_client.get(URL, {"patient": theirs.patient_id}).json()["count"] == 0


def test_a_malformed_patient_filter_answers_400(api_client):
    response = api_client.get(URL, {"patient": "abc"})

    assert response.status_code == 400 and "patient" in response.json()


def test_another_organizations_scan_and_its_image_are_404(api_client, other_organization):
    theirs = ScanFactory(patient=PatientFactory(organization=other_organization))

    assert api_client.get(f"{URL}{theirs.pk}/").status_code == 404
    assert api_client.get(f"{URL}{theirs.pk}/image/").status_code == 404
    assert api_client.post(f"{URL}{theirs.pk}/predict/").status_code == 404


def test_retrieve_includes_the_finished_prediction(api_client, patient, tiny_model_version):
    scan_id = upload(api_client, patient).json()["id"]
    predict_scan.apply(args=[Scan.objects.get(pk=scan_id).latest_prediction.pk])

    prediction = api_client.get(f"{URL}{scan_id}/").json()["prediction"]

    assert prediction["status"] == "done"
    assert prediction["label"] in CLASS_NAMES
    assert math.isclose(sum(prediction["probabilities"].values()), 1.0, abs_tol=1e-4)
    assert prediction["model_version"] == tiny_model_version.name
    assert prediction["finished_at"] and prediction["inference_ms"] is not None
    assert prediction["failure_reason"] == ""
    assert prediction["out_of_scope"] in (True, False) and "out_of_scope_reason" in prediction


def test_retrieve_shows_the_reason_of_a_failed_prediction(api_client, patient, active_model_version):
    from diagnosis import services

    scan_id = upload(api_client, patient).json()["id"]
    services.prediction_fail(prediction_id=Scan.objects.get(pk=scan_id).latest_prediction.pk, reason="bad slice")

    prediction = api_client.get(f"{URL}{scan_id}/").json()["prediction"]

    assert (prediction["status"], prediction["failure_reason"]) == ("failed", "bad slice")


def test_the_image_endpoint_returns_the_stored_bytes(api_client, patient, active_model_version):
    data = image_bytes("JPEG", (30, 20))
    scan_id = upload(api_client, patient, data, name="s.jpg").json()["id"]

    response = api_client.get(f"{URL}{scan_id}/image/")

    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == data


def test_predict_queues_a_new_prediction_that_becomes_the_latest(api_client, patient, active_model_version):
    body = upload(api_client, patient).json()
    Prediction.objects.filter(scan_id=body["id"]).update(status="done")

    response = api_client.post(f"{URL}{body['id']}/predict/")

    assert response.status_code == 202
    assert response.json()["prediction"]["id"] != body["prediction"]["id"]
    assert Prediction.objects.filter(scan_id=body["id"]).count() == 2


def test_predict_while_a_diagnosis_is_pending_answers_409_and_queues_nothing(api_client, patient, active_model_version):
    body = upload(api_client, patient).json()

    response = api_client.post(f"{URL}{body['id']}/predict/")

    assert response.status_code == 409
    assert "already queued" in response.json()["detail"]
    assert Prediction.objects.filter(scan_id=body["id"]).count() == 1


@pytest.mark.parametrize("accept", ["image/png", "image/*"])
def test_the_image_is_served_to_a_client_that_accepts_only_images(api_client, patient, active_model_version, accept):
    scan_id = upload(api_client, patient).json()["id"]

    response = api_client.get(f"{URL}{scan_id}/image/", HTTP_ACCEPT=accept)

    assert response.status_code == 200 and response["Content-Type"] == "image/png"


def test_an_error_for_a_client_that_asked_for_a_png_says_it_is_json(api_client, patient, active_model_version):
    scan_id = upload(api_client, patient).json()["id"]

    response = api_client.get(f"{URL}{scan_id}/heatmap/", {"class": "Nope"}, HTTP_ACCEPT="image/png")

    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert "heat map" in str(response.json()["class"])
    missing = api_client.get(f"{URL}999999/report/", HTTP_ACCEPT="application/pdf")
    assert missing.status_code == 404 and missing["Content-Type"] == "application/json"


def test_a_dicom_scan_says_how_its_result_went_to_the_archive_in_the_list_and_the_detail(
        client, api_client, patient, active_model_version, django_assert_max_num_queries):
    from diagnosis.models import PacsDelivery

    from . import openapi
    from .factories import DonePredictionFactory

    scans = [ScanFactory(patient=patient, dicom_study_uid="1.2.3", dicom_instance_uid=f"1.2.3.{i}") for i in range(3)]
    for scan, status in zip(scans[:2], ["delivered", "failed"]):
        prediction = DonePredictionFactory(scan=scan)
        PacsDelivery.objects.create(organization=patient.organization, scan=scan, prediction=prediction, status=status,
                                    url="https://pacs.example.org/dicom-web", sop_instance_uid=f"2.25.{scan.pk}",
                                    last_error="" if status == "delivered" else "The archive answered 401 Unauthorized.")
    DonePredictionFactory(scan=scans[2])  # no archive set when it finished

    detail = api_client.get(f"{URL}{scans[1].pk}/")
    assert openapi.mismatches(openapi.load(client), "/api/v1/scans/{id}/", "get", detail) == []
    assert detail.json()["dicom"]["archive"] == {"status": "failed", "instance_uid": f"2.25.{scans[1].pk}",
                                                 "reviewed": False, "stored_at": None, "report": None,
                                                 "error": "The archive answered 401 Unauthorized."}
    with django_assert_max_num_queries(12):  # the deliveries come with the predictions, not one query per scan
        listed = {s["id"]: s["dicom"]["archive"] for s in api_client.get(URL).json()["results"]}
    assert listed[scans[0].pk]["status"] == "delivered" and listed[scans[0].pk]["stored_at"] is None
    assert listed[scans[2].pk] is None
