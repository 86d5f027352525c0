"""Grad-CAM of another class on request: queued for the worker once, computed once, kept."""

import datetime

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from diagnosis import ml, services
from diagnosis.models import ClassHeatmap
from diagnosis.tasks import explain_class

from .factories import PatientFactory, PredictionFactory, image_bytes


@pytest.fixture
def diagnosed(organization, clinician, tiny_model_version):
    scan = services.scan_create(
        patient=PatientFactory(organization=organization),
        file=SimpleUploadedFile("s.png", image_bytes("PNG", (60, 50))),
        uploaded_by=clinician,
    )
    return services.prediction_run(prediction_id=scan.latest_prediction.pk)


def other_class(prediction) -> str:
    return next(name for name in prediction.model_version.class_names if name != prediction.label)


def test_a_request_queues_one_task_on_commit_and_asking_again_queues_nothing(
    diagnosed, inference_queue, django_capture_on_commit_callbacks
):
    inference_queue.drain()
    with django_capture_on_commit_callbacks(execute=True):
        first = services.class_heatmap_request(prediction=diagnosed, class_name=other_class(diagnosed))
    with django_capture_on_commit_callbacks(execute=True):
        again = services.class_heatmap_request(prediction=diagnosed, class_name=other_class(diagnosed))

    assert first == again and first.status == ClassHeatmap.Status.QUEUED
    assert inference_queue.drain() == [{"task": "diagnosis.tasks.explain_class", "args": [first.pk], "kwargs": {}}]


def test_the_task_stores_an_overlay_and_a_second_delivery_changes_nothing(diagnosed):
    heatmap = services.class_heatmap_request(prediction=diagnosed, class_name=other_class(diagnosed))

    explain_class.apply(args=[heatmap.pk])
    heatmap.refresh_from_db()
    stored, finished = heatmap.image.name, heatmap.finished_at
    explain_class.apply(args=[heatmap.pk])
    heatmap.refresh_from_db()

    assert heatmap.status == ClassHeatmap.Status.DONE
    assert (heatmap.image.name, heatmap.finished_at) == (stored, finished)
    assert stored.endswith(f"-p{diagnosed.pk}-heatmap-{heatmap.pk}.png")
    with heatmap.image.open("rb") as handle, Image.open(handle) as overlay:
        assert (overlay.mode, overlay.size) == ("RGBA", (60, 50))
        assert np.asarray(overlay).shape == (50, 60, 4)


def test_an_unknown_class_is_refused(diagnosed):
    with pytest.raises(ValidationError, match="Unknown class 'Banana'; choose one of Cyst, Normal, Stone, Tumor"):
        services.class_heatmap_request(prediction=diagnosed, class_name="Banana")
    assert not ClassHeatmap.objects.exists()


def test_an_unfinished_diagnosis_has_nothing_to_explain(organization, active_model_version):
    prediction = PredictionFactory(model_version=active_model_version)

    with pytest.raises(ValidationError, match="not finished"):
        services.class_heatmap_request(prediction=prediction, class_name="Tumor")


def test_a_map_that_cannot_be_computed_fails_with_a_reason_and_is_retried_only_after_a_while(
    organization, clinician, unexplainable_model_path, django_capture_on_commit_callbacks
):
    services.model_version_register(path=unexplainable_model_path, activate=True)
    scan = services.scan_create(
        patient=PatientFactory(organization=organization),
        file=SimpleUploadedFile("s.png", image_bytes("PNG", (40, 40))),
        uploaded_by=clinician,
    )
    prediction = services.prediction_run(prediction_id=scan.latest_prediction.pk)
    heatmap = services.class_heatmap_request(prediction=prediction, class_name=other_class(prediction))

    services.class_heatmap_run(class_heatmap_id=heatmap.pk)
    ml.clear_cache()

    heatmap.refresh_from_db()
    assert heatmap.status == ClassHeatmap.Status.FAILED
    assert "convolutional feature map" in heatmap.failure_reason
    assert services.class_heatmap_request(prediction=prediction, class_name=heatmap.class_name).status == "failed"
    ClassHeatmap.objects.filter(pk=heatmap.pk).update(finished_at=timezone.now() - datetime.timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        retried = services.class_heatmap_request(prediction=prediction, class_name=heatmap.class_name)
    assert (retried.status, retried.failure_reason, len(callbacks)) == (ClassHeatmap.Status.QUEUED, "", 1)
