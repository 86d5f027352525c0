import pytest
from rest_framework.test import APIClient

from diagnosis.models import Prediction, Review

from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ScanFactory


def url(scan):
    return f"/api/v1/scans/{scan.pk}/review/"


@pytest.fixture
def scan(organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    DonePredictionFactory(scan=scan, label="Stone")
    return scan


def test_a_correction_answers_201_and_the_scan_shows_both_the_ai_result_and_the_review(api_client, scan):
    response = api_client.post(url(scan), {"label": "Tumor", "comment": "Mass at the lower pole"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["label"], body["comment"], body["reviewed_by"], body["agrees_with_ai"], body["ai_label"]) == (
        "Tumor", "Mass at the lower pole", "alice", False, "Stone"
    )
    detail = api_client.get(f"/api/v1/scans/{scan.pk}/").json()
    assert detail["prediction"]["label"] == "Stone"
    assert {k: detail["review"][k] for k in ("label", "comment", "reviewed_by")} == {
        "label": "Tumor", "comment": "Mass at the lower pole", "reviewed_by": "alice"
    }
    assert detail["review"]["reviewed_at"] == body["reviewed_at"]


def test_accepting_without_a_comment_is_enough(api_client, scan):
    response = api_client.post(url(scan), {"label": "Stone"}, format="json")

    assert response.status_code == 201
    assert (response.json()["agrees_with_ai"], response.json()["comment"]) == (True, "")


def test_an_unreviewed_scan_has_review_null(api_client, scan):
    assert api_client.get(f"/api/v1/scans/{scan.pk}/").json()["review"] is None


@pytest.mark.parametrize("payload", [{"label": "Banana"}, {"label": ""}, {}])
def test_an_invalid_label_answers_400_with_a_message_and_records_nothing(api_client, scan, payload):
    response = api_client.post(url(scan), payload, format="json")

    assert response.status_code == 400
    assert response.json()["label"]
    assert not Review.objects.exists()


def test_a_scan_still_being_diagnosed_answers_400(api_client, organization):
    scan = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), status=Prediction.Status.RUNNING).scan

    response = api_client.post(url(scan), {"label": "Stone"}, format="json")

    assert response.status_code == 400
    assert "can be reviewed once the diagnosis has finished" in response.json()["label"][0]


def test_another_organizations_scan_answers_404(api_client, other_organization):
    theirs = ScanFactory(patient=PatientFactory(organization=other_organization))
    DonePredictionFactory(scan=theirs)

    assert api_client.post(url(theirs), {"label": "Stone"}, format="json").status_code == 404
    assert not Review.objects.exists()


def test_anonymous_review_answers_401(scan):
    assert APIClient().post(url(scan), {"label": "Stone"}, format="json").status_code == 401


def test_a_review_naming_a_replaced_result_answers_400_and_records_nothing(api_client, scan):
    seen = scan.predictions.get()
    DonePredictionFactory(scan=scan, label="Cyst")

    response = api_client.post(url(scan), {"label": "Stone", "prediction": seen.pk}, format="json")

    assert response.status_code == 400
    assert "A newer AI result (Cyst" in response.json()["prediction"][0]
    assert not Review.objects.exists()


def test_a_scan_whose_diagnosis_failed_can_be_read_and_agreement_is_null(api_client, organization):
    failed = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)),
                               status=Prediction.Status.FAILED, failure_reason="The worker ran out of memory")

    response = api_client.post(url(failed.scan), {"label": "Cyst"}, format="json")

    assert response.status_code == 201
    assert (response.json()["agrees_with_ai"], response.json()["ai_label"]) == (None, "")
