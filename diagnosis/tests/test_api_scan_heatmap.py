import io

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from diagnosis.models import ClassHeatmap, Prediction

from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ScanFactory


def png(colour=(255, 0, 0, 128)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def url(scan, cls=None):
    return f"/api/v1/scans/{scan.pk}/heatmap/" + (f"?class={cls}" if cls else "")


@pytest.fixture
def prediction(organization):
    prediction = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), label="Stone")
    prediction.heatmap.save("h.png", ContentFile(png()))
    return prediction


def test_the_scan_gives_the_heatmap_url_and_it_answers_the_png(api_client, prediction):
    body = api_client.get(f"/api/v1/scans/{prediction.scan_id}/").json()

    assert body["prediction"]["heatmap_url"] == f"http://testserver/api/v1/scans/{prediction.scan_id}/heatmap/"
    response = api_client.get(body["prediction"]["heatmap_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == png()


def test_heatmap_url_is_null_until_there_is_a_map(api_client, organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    PredictionFactory(scan=scan, status=Prediction.Status.RUNNING)

    assert api_client.get(f"/api/v1/scans/{scan.pk}/").json()["prediction"]["heatmap_url"] is None
    assert api_client.get(url(scan)).status_code == 400


def test_another_class_is_queued_then_served_once_computed(api_client, prediction, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = api_client.get(url(prediction.scan, "Tumor"))

    assert first.status_code == 202
    assert first.json() == {"class": "Tumor", "status": "queued", "detail": "The heat map is being computed; ask again in a few seconds."}
    assert len(callbacks) == 1
    heatmap = ClassHeatmap.objects.get(prediction=prediction, class_name="Tumor")
    heatmap.image.save("t.png", ContentFile(png((0, 0, 255, 100))), save=False)
    heatmap.status, heatmap.finished_at = ClassHeatmap.Status.DONE, timezone.now()
    heatmap.save()

    ready = api_client.get(url(prediction.scan, "Tumor"), HTTP_ACCEPT="image/png")
    assert ready.status_code == 200 and b"".join(ready.streaming_content) == png((0, 0, 255, 100))


def test_a_map_that_failed_answers_503_with_the_reason(api_client, prediction):
    ClassHeatmap.objects.create(
        prediction=prediction, class_name="Cyst", status=ClassHeatmap.Status.FAILED,
        failure_reason="The model failed on this image.", finished_at=timezone.now(),
    )

    response = api_client.get(url(prediction.scan, "Cyst"))

    assert response.status_code == 503
    assert response.json()["detail"].startswith("The model failed on this image.")


def test_an_unknown_class_answers_400(api_client, prediction):
    response = api_client.get(url(prediction.scan, "Banana"))

    assert response.status_code == 400
    assert "Unknown class 'Banana'" in response.json()["class"][0]


def test_another_organizations_heatmap_answers_404(api_client, other_organization):
    theirs = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=other_organization)))
    theirs.heatmap.save("h.png", ContentFile(png()))

    assert api_client.get(url(theirs.scan)).status_code == 404
    assert api_client.get(url(theirs.scan, "Tumor")).status_code == 404
    assert not ClassHeatmap.objects.exists()


def test_anonymous_heatmap_answers_401(prediction):
    assert APIClient().get(url(prediction.scan)).status_code == 401
