"""The scan page's heat map: served through an organization-checked view, other classes on request."""

import io

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from PIL import Image

from diagnosis.models import ClassHeatmap

from .factories import DonePredictionFactory, PatientFactory, ScanFactory


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 48), (255, 0, 0, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def prediction(organization):
    prediction = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), label="Stone")
    prediction.heatmap.save("h.png", ContentFile(png()))
    return prediction


def test_the_scan_page_stacks_the_overlay_on_the_slice_with_its_controls(ui_client, prediction):
    page = ui_client.get(reverse("diagnosis:scan_detail", args=[prediction.scan_id])).content.decode()

    heatmap_url = reverse("diagnosis:scan_heatmap", args=[prediction.scan_id])
    assert f'class="overlay" id="overlay" alt="" width="64" height="48" draggable="false"\n             src="{heatmap_url}"' in page
    for control in ('id="heatmap-toggle"', 'id="heatmap-opacity"', 'id="heatmap-class"', 'id="brightness"',
                    'id="contrast"', 'data-action="zoom-in"', 'data-action="zoom-out"', "js/viewer.js"):
        assert control in page, control
    assert '<option value="Stone" selected>Stone (AI)</option>' in page


def test_the_heatmap_view_answers_the_png_without_caching(ui_client, prediction):
    response = ui_client.get(reverse("diagnosis:scan_heatmap", args=[prediction.scan_id]))

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert "no-store" in response["Cache-Control"]
    assert b"".join(response.streaming_content) == png()


def test_another_class_answers_202_while_the_worker_computes_it(ui_client, prediction):
    response = ui_client.get(reverse("diagnosis:scan_heatmap", args=[prediction.scan_id]), {"class": "Tumor"})

    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert ClassHeatmap.objects.filter(prediction=prediction, class_name="Tumor").exists()


def test_an_unknown_class_answers_400_with_the_reason(ui_client, prediction):
    response = ui_client.get(reverse("diagnosis:scan_heatmap", args=[prediction.scan_id]), {"class": "Kidney"})

    assert response.status_code == 400 and "Unknown class 'Kidney'" in response.json()["detail"]


def test_another_organizations_heatmap_is_404(ui_client, other_organization):
    theirs = DonePredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=other_organization)))
    theirs.heatmap.save("h.png", ContentFile(png()))

    assert ui_client.get(reverse("diagnosis:scan_heatmap", args=[theirs.scan_id])).status_code == 404
    assert ui_client.get(reverse("diagnosis:scan_heatmap", args=[theirs.scan_id]), {"class": "Cyst"}).status_code == 404


def test_the_heatmap_needs_login(client, prediction):
    response = client.get(reverse("diagnosis:scan_heatmap", args=[prediction.scan_id]))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
