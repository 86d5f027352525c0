"""Grad-CAM maps for classes other than the predicted one, computed by the worker on request.

The web process never loads TensorFlow: a map for another class is queued for the worker (which
has the model in memory) and kept once computed, so asking again costs nothing.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from functools import partial

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db.models.fields.files import FieldFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import ml
from ..models import ClassHeatmap, Prediction, class_heatmap_upload_to
from .scans import MAX_FAILURE_REASON, _describe_failure

logger = logging.getLogger(__name__)

# A failed map is tried again when someone asks after this long, not on every poll.
RETRY_FAILED_AFTER = datetime.timedelta(seconds=60)


def _enqueue(class_heatmap_id: int) -> None:
    from ..tasks import explain_class

    try:
        explain_class.apply_async(args=[class_heatmap_id])
    except Exception as exc:
        logger.exception("Could not queue heat map %s", class_heatmap_id)
        class_heatmap_fail(
            class_heatmap_id=class_heatmap_id,
            reason=f"The heat map could not be queued (the task broker did not answer: {exc.__class__.__name__}).",
        )


def class_heatmap_request(*, prediction: Prediction, class_name: str) -> ClassHeatmap:
    """The map of ``class_name`` for the prediction: the stored one, or a newly queued computation."""
    if prediction.status != Prediction.Status.DONE:
        raise ValidationError({"class": ["The diagnosis is not finished, so there is nothing to explain yet."]})
    class_names = list(prediction.model_version.class_names)
    if class_name not in class_names:
        raise ValidationError({"class": [f"Unknown class {class_name!r}; choose one of {', '.join(class_names)}."]})
    with transaction.atomic():
        heatmap = ClassHeatmap.objects.select_for_update().filter(prediction=prediction, class_name=class_name).first()
        if heatmap is None:
            try:
                with transaction.atomic():
                    heatmap = ClassHeatmap.objects.create(prediction=prediction, class_name=class_name)
            except IntegrityError:
                # Another request created it a moment ago; that one queued the work.
                return ClassHeatmap.objects.get(prediction=prediction, class_name=class_name)
        elif heatmap.status == ClassHeatmap.Status.FAILED and timezone.now() - heatmap.finished_at > RETRY_FAILED_AFTER:
            heatmap.status = ClassHeatmap.Status.QUEUED
            heatmap.failure_reason = ""
            heatmap.requested_at = timezone.now()
            heatmap.finished_at = None
            heatmap.save(update_fields=["status", "failure_reason", "requested_at", "finished_at"])
        else:
            return heatmap
        transaction.on_commit(partial(_enqueue, heatmap.pk))
    return heatmap


def class_heatmap_fail(*, class_heatmap_id: int, reason: str) -> ClassHeatmap | None:
    with transaction.atomic():
        heatmap = ClassHeatmap.objects.select_for_update().filter(pk=class_heatmap_id).first()
        if heatmap is None or heatmap.status != ClassHeatmap.Status.QUEUED:
            return heatmap
        heatmap.status = ClassHeatmap.Status.FAILED
        heatmap.failure_reason = reason[:MAX_FAILURE_REASON]
        heatmap.finished_at = timezone.now()
        heatmap.save(update_fields=["status", "failure_reason", "finished_at"])
    logger.warning("Heat map %s failed: %s", class_heatmap_id, reason)
    return heatmap


def class_heatmap_run(*, class_heatmap_id: int) -> ClassHeatmap | None:
    """Compute a queued map. A second delivery of a finished one changes nothing."""
    heatmap = (
        ClassHeatmap.objects.select_related("prediction__scan", "prediction__model_version")
        .filter(pk=class_heatmap_id)
        .first()
    )
    if heatmap is None or heatmap.status != ClassHeatmap.Status.QUEUED:
        return heatmap
    # No row lock while computing: on SQLite a held write lock would stall every other writer.
    prediction = heatmap.prediction
    try:
        with prediction.scan.image.open("rb") as handle:
            image_bytes = handle.read()
        gradcam = ml.explain(model_version=prediction.model_version, image_bytes=image_bytes, class_name=heatmap.class_name)
        stored = heatmap.image.storage.save(class_heatmap_upload_to(heatmap, ""), ContentFile(ml.overlay_png(gradcam)))
    except Exception as exc:
        logger.exception("Heat map %s could not be computed", class_heatmap_id)
        reason = f"The stored image could not be read ({exc.__class__.__name__})." if isinstance(exc, OSError) else _describe_failure(exc)
        return class_heatmap_fail(class_heatmap_id=class_heatmap_id, reason=reason)

    with transaction.atomic():
        current = ClassHeatmap.objects.select_for_update().filter(pk=class_heatmap_id).first()
        if current is None or current.status != ClassHeatmap.Status.QUEUED:
            # A duplicate delivery got there first, or the patient's record was erased meanwhile.
            heatmap.image.storage.delete(stored)
            return current
        heatmap = current
        heatmap.image.name = stored
        heatmap.status = ClassHeatmap.Status.DONE
        heatmap.finished_at = timezone.now()
        heatmap.save(update_fields=["image", "status", "finished_at"])
    return heatmap


@dataclass(frozen=True)
class HeatmapAnswer:
    """What to answer someone who asks for a map: the PNG, or that it is on its way, or why not."""

    class_name: str
    status: str  # "ready", "queued" or "failed"
    file: FieldFile | None = None
    detail: str = ""


def heatmap_get_or_request(*, prediction: Prediction | None, class_name: str | None = None) -> HeatmapAnswer:
    """The stored map of the class (the predicted one by default), queuing its computation if needed."""
    if prediction is None or prediction.status != Prediction.Status.DONE:
        raise ValidationError({"class": ["The diagnosis is not finished, so there is no heat map yet."]})
    class_name = class_name or prediction.label
    if class_name == prediction.label and prediction.heatmap:
        return HeatmapAnswer(class_name, "ready", prediction.heatmap)
    heatmap = class_heatmap_request(prediction=prediction, class_name=class_name)
    if heatmap.status == ClassHeatmap.Status.DONE:
        return HeatmapAnswer(class_name, "ready", heatmap.image)
    if heatmap.status == ClassHeatmap.Status.FAILED:
        return HeatmapAnswer(
            class_name, "failed", detail=f"{heatmap.failure_reason} Ask again in a minute to retry."
        )
    return HeatmapAnswer(class_name, "queued", detail="The heat map is being computed; ask again in a few seconds.")
