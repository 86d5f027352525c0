"""The worker stores a Grad-CAM overlay with every diagnosis, and a heat-map failure never costs the diagnosis."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from diagnosis import ml, services
from diagnosis.models import Prediction

from .factories import PatientFactory, image_bytes


def upload(organization, clinician, data: bytes) -> Prediction:
    patient = PatientFactory(organization=organization)
    scan = services.scan_create(patient=patient, file=SimpleUploadedFile("s.png", data), uploaded_by=clinician)
    return scan.latest_prediction


def test_a_diagnosis_stores_a_transparent_png_overlay_of_the_slices_size_next_to_the_scan(
    organization, clinician, tiny_model_version
):
    prediction = upload(organization, clinician, image_bytes("PNG", (90, 70)))

    services.prediction_run(prediction_id=prediction.pk)

    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.DONE
    assert prediction.heatmap.name.startswith(prediction.scan.image.name.rsplit(".", 1)[0])
    assert prediction.heatmap.name.endswith(f"-p{prediction.pk}-heatmap.png")
    with prediction.heatmap.open("rb") as handle, Image.open(handle) as overlay:
        assert (overlay.format, overlay.mode, overlay.size) == ("PNG", "RGBA", (90, 70))
        alpha = np.asarray(overlay)[..., 3]
    # Never fully opaque: the slice must show through even where the map is hottest.
    assert alpha.max() < 255


def test_the_top_probability_is_stored_as_the_confidence(organization, clinician, tiny_model_version):
    prediction = upload(organization, clinician, image_bytes("PNG", (40, 40)))

    services.prediction_run(prediction_id=prediction.pk)

    prediction.refresh_from_db()
    assert prediction.confidence == pytest.approx(max(prediction.probabilities.values()))
    assert prediction.probabilities[prediction.label] == pytest.approx(prediction.confidence)


def test_a_heat_map_failure_leaves_the_diagnosis_done_without_a_map(
    organization, clinician, unexplainable_model_path, caplog
):
    services.model_version_register(path=unexplainable_model_path, activate=True)
    prediction = upload(organization, clinician, image_bytes("PNG", (40, 40)))

    services.prediction_run(prediction_id=prediction.pk)
    ml.clear_cache()

    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.DONE
    assert prediction.label and prediction.failure_reason == ""
    assert not prediction.heatmap
    assert f"No heat map for prediction {prediction.pk}" in caplog.text


def test_one_explainer_is_built_per_loaded_classifier(tiny_model_version):
    first = ml.get_explainer(tiny_model_version)

    assert ml.get_explainer(tiny_model_version) is first
    ml.clear_cache()
    assert ml.get_explainer(tiny_model_version) is not first


def test_overlay_png_is_an_rgba_png_of_the_images_size(tiny_model_version):
    gradcam = ml.explain(model_version=tiny_model_version, image_bytes=image_bytes("JPEG", (50, 30)), class_name="Cyst")

    with Image.open(io.BytesIO(ml.overlay_png(gradcam))) as overlay:
        assert (overlay.format, overlay.mode, overlay.size) == ("PNG", "RGBA", (50, 30))
    assert gradcam.class_name == "Cyst"
