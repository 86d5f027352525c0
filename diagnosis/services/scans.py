"""Scans and their predictions: upload, queueing and the worker's side of a diagnosis."""

from __future__ import annotations

import hashlib
import logging
import time
from functools import partial
from datetime import timedelta
from pathlib import Path
from typing import IO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import ml, selectors
from ..models import DicomStoreRefusal, ModelVersion, Patient, Prediction, Scan, heatmap_upload_to
from ..validators import validate_scan_image
from .sweeps import resend_stale
from .hl7_feed import hl7_result_send
from .pacs import pacs_result_send
from .webhooks import diagnosis_finished_notify
from .performance import inputs_result_judge
from .merges import check_not_merged
from .withdrawals import check_not_withdrawn

logger = logging.getLogger(__name__)

MAX_FAILURE_REASON = 2000
# What a DICOM slice's header said that is kept with its scan, and how much of it (the fields' lengths).
DICOM_TEXT_FIELDS = (("dicom_patient_id", 64), ("dicom_study_uid", 64), ("dicom_series_uid", 64),
                     ("dicom_instance_uid", 64), ("dicom_accession_number", 16), ("dicom_sop_class_uid", 64),
                     ("dicom_study_description", 64))
# A slice that kills its worker (out of memory, a hung model) is redelivered after each death; without
# a cap it would kill workers for ever. Passing errors take up to four attempts (tasks.MAX_RETRIES).
MAX_ATTEMPTS = 6


class NoActiveModelVersion(Exception):
    """No model version is active, so nothing can be diagnosed (an administrator must register one)."""

    message = "No diagnosis model is active. An administrator must register one (manage.py bootstrap)."

    def __str__(self) -> str:
        return self.message


# A second "diagnose again" while one is pending only doubles the work (a double click, two colleagues at
# once). A diagnosis pending longer than this may have lost its task (a broker restarted), so then another
# may be asked for.
RERUN_WHILE_PENDING_AFTER = timedelta(minutes=10)


class DiagnosisPending(Exception):
    """The scan's newest diagnosis is still queued or running, and recently asked for."""

    def __init__(self, prediction: Prediction) -> None:
        self.prediction = prediction
        super().__init__(str(self))

    def __str__(self) -> str:
        minutes = int(RERUN_WHILE_PENDING_AFTER.total_seconds() // 60)
        return (f"A diagnosis of this scan is already {self.prediction.get_status_display().lower()}; its result "
                f"will appear here. If it has not finished {minutes} minutes after it was queued, ask again.")


class ScanImageUnavailable(Exception):
    """The stored image could not be read; storage may recover, so the task retries."""



def _enqueue_prediction(prediction_id: int) -> None:
    from ..tasks import predict_scan

    try:
        predict_scan.apply_async(args=[prediction_id])
    except Exception as exc:
        # The scan is stored and must stay; say why nothing will happen instead of leaving it queued.
        logger.exception("Could not queue prediction %s", prediction_id)
        prediction_fail(
            prediction_id=prediction_id,
            reason=f"The diagnosis could not be queued (the task broker did not answer: {exc.__class__.__name__}). "
            "Run it again when the service is back.",
        )


def prediction_create(*, scan: Scan, model_version: ModelVersion | None = None) -> Prediction:
    """Queue a (new) diagnosis of the scan; the task is sent once the surrounding transaction commits.

    Raises DiagnosisPending while the scan's newest diagnosis is queued or running (and was queued
    within RERUN_WHILE_PENDING_AFTER), and ValidationError for a withdrawn scan.
    """
    check_not_withdrawn(scan)  # before any other refusal: nothing else would make it diagnosable
    model_version = model_version or selectors.model_version_active()
    if model_version is None:
        raise NoActiveModelVersion()
    with transaction.atomic():
        # The scan's row serialises two requests at once, so that only one of them queues a diagnosis.
        locked = Scan.objects.select_for_update(of=("self",)).select_related("withdrawn_by").filter(pk=scan.pk).first()
        if locked is not None:
            check_not_withdrawn(locked)
        pending = (
            Prediction.objects.filter(scan=scan, status__in=[Prediction.Status.QUEUED, Prediction.Status.RUNNING],
                                      queued_at__gt=timezone.now() - RERUN_WHILE_PENDING_AFTER)
            .order_by("-queued_at", "-id")
            .first()
        )
        if pending is not None:
            raise DiagnosisPending(pending)
        prediction = Prediction.objects.create(scan=scan, model_version=model_version)
        transaction.on_commit(partial(_enqueue_prediction, prediction.pk))
    return prediction


def predictions_resend_lost(*, older_than: timedelta) -> list[int]:
    """Send the task again for every diagnosis that has waited or run longer than ``older_than`` since it
    was queued, started or last sent again. Returns their ids.

    Its task can be lost: Redis keeps no queue across a restart here, and a worker killed mid-task
    leaves its message unacknowledged until the broker's visibility timeout. Sending again is safe:
    the task locks the row and leaves a finished diagnosis alone, and attempts are capped.
    """
    now = timezone.now()
    cutoff = now - older_than
    stale = (
        Prediction.objects.filter(status__in=[Prediction.Status.QUEUED, Prediction.Status.RUNNING])
        .annotate(last_touched=Coalesce("resent_at", "started_at", "queued_at"))
        .filter(last_touched__lt=cutoff)
    )
    resent = resend_stale(stale, now=now, enqueue=_enqueue_prediction)
    if resent:
        logger.warning("Sent the diagnosis task again for predictions %s: waiting or running for too long", resent)
    return resent


def scan_create(*, patient: Patient, file: IO[bytes], uploaded_by: AbstractBaseUser,
                refiled_from: Scan | None = None) -> Scan:
    """Validate and store an uploaded slice, with a queued prediction, in one transaction. ``refiled_from``
    is the withdrawn scan of another patient the slice comes from (``scan_refile``)."""
    membership = selectors.membership_of(uploaded_by)
    if membership is None or membership.organization_id != patient.organization_id:
        raise ValidationError({"patient": ["The patient does not belong to your organization."]})
    check_not_merged(patient)
    try:
        checked = validate_scan_image(file)
    except ValidationError as exc:
        raise ValidationError({"image": exc.messages}) from None
    if checked.dicom_patient_id and settings.KIDNEYWEB_DICOM_PATIENT_ID_CHECK \
            and not names_patient(checked.dicom_patient_id, patient):
        raise ValidationError({"image": [
            f"This DICOM slice's header names patient ID {checked.dicom_patient_id!r}, but {patient.name}'s MRN is "
            f"{patient.mrn!r}: check that you chose the right patient. Nothing was stored."
        ]})
    digest = _sha256(checked.data)
    # The same slice twice for one patient is a resent form or a retried request, not a new scan.
    # The archive's own identity of the slice counts too: sent again with other pixels, it is still the instance
    # stored before.
    instance_uid = checked.dicom_instance_uid or (refiled_from.dicom_instance_uid if refiled_from else "")
    earlier = selectors.scan_of_slice(patient_id=patient.pk, sha256=digest, instance_uid=instance_uid)
    if earlier is not None:
        raise _already_stored(earlier)
    model_version = selectors.model_version_active()
    if model_version is None:
        raise NoActiveModelVersion()

    original_filename = Path(str(getattr(file, "name", "") or "")).name[: Scan._meta.get_field("original_filename").max_length]

    def from_header(field: str):
        # A filed slice is a stored PNG: what its header said comes with it from the scan it was filed from.
        return getattr(checked, field) or (getattr(refiled_from, field) if refiled_from else None)

    scan = Scan(
        patient=patient,
        sha256=digest,
        original_filename=original_filename,
        width=checked.width,
        height=checked.height,
        format=checked.format,
        **{field: (from_header(field) or "")[:size] for field, size in DICOM_TEXT_FIELDS},
        dicom_study_date=from_header("dicom_study_date"),
        dicom_study_time=from_header("dicom_study_time"),
        uploaded_by=uploaded_by,
        refiled_from=refiled_from,
    )
    stored_name = ""
    try:
        with transaction.atomic():
            # The name given here is ignored: scan_upload_to makes one from a uuid and the format.
            scan.image.save("upload", ContentFile(checked.data), save=False)
            stored_name = scan.image.name
            scan.save()
            # Checked again now that the scan's row holds a key-share lock on the patient's: a merge that
            # committed since the check above would otherwise leave this scan on the retired record.
            current = Patient.objects.select_related("merged_into").filter(pk=patient.pk).first()
            if current is None:
                raise ValidationError({"patient": ["This patient's record was erased meanwhile; nothing was stored."]})
            check_not_merged(current)
            prediction_create(scan=scan, model_version=model_version)
            dicom_refusals_resolve(scan=scan)
    except BaseException as exc:
        if stored_name:
            scan.image.storage.delete(stored_name)
        if isinstance(exc, IntegrityError):
            # Two sends of this slice crossed: the other committed first (scan_slice_once_per_patient,
            # scan_instance_once_per_patient).
            earlier = selectors.scan_of_slice(patient_id=patient.pk, sha256=digest, instance_uid=instance_uid)
            if earlier is not None:
                raise _already_stored(earlier) from None
        raise
    return scan


def dicom_refusals_resolve(*, scan: Scan, instance_uid: str = "") -> int:
    """Mark the organization's open refusals of a DICOM instance (``instance_uid``, else the scan's) as stored, as
    ``scan``: however it came (the archive sending it again, or an upload for the patient a refusal asked for), it
    is no longer missing. Returns how many were open."""
    instance_uid = (instance_uid or scan.dicom_instance_uid)[:64]
    if not instance_uid:
        return 0
    return DicomStoreRefusal.objects.filter(
        organization_id=scan.patient.organization_id, resolved_at__isnull=True, sop_instance_uid=instance_uid,
    ).update(resolved_at=timezone.now(), resolved_as=scan)


def _already_stored(earlier: Scan) -> ValidationError:
    # Coded, so that a sender that retries by design (a DICOM store) can answer with the scan it already made.
    return ValidationError({"image": [ValidationError(
        f"This slice is already stored for this patient as scan {earlier.pk} (uploaded "
        f"{timezone.localtime(earlier.uploaded_at):%Y-%m-%d %H:%M}); open that scan instead of uploading it again.",
        code="already_stored", params={"scan": earlier.pk})]})


def names_patient(dicom_id: str, patient: Patient) -> bool:
    """Whether a DICOM PatientID names this patient: by their MRN, or by the MRN of a record merged into
    theirs, which the hospital's systems may still send."""
    if same_patient_id(dicom_id, patient.mrn):
        return True
    return any(same_patient_id(dicom_id, mrn) for mrn in selectors.patient_former_mrns(patient=patient))


def same_patient_id(dicom_id: str, mrn: str) -> bool:
    """Whether a DICOM PatientID names this MRN: case, surrounding spaces and leading zeros of an
    all-digit number differ between systems without naming another patient."""
    a, b = dicom_id.strip().upper(), mrn.strip().upper()
    if a.isdigit() and b.isdigit():
        return int(a) == int(b)
    return a == b


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _describe_failure(exc: BaseException) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, ml.ModelFileError):
        reason = str(exc)
    elif isinstance(exc, SoftTimeLimitExceeded):
        reason = "The diagnosis took longer than the time limit and was stopped."
    elif exc.__class__.__name__ == "ImageError":  # mlcore.images.ImageError, without importing TensorFlow here
        reason = f"The model could not read the image: {exc}"
    else:
        reason = f"The model failed on this image ({exc.__class__.__name__}: {exc})."
    return reason[:MAX_FAILURE_REASON]


def prediction_fail(*, prediction_id: int, reason: str) -> Prediction | None:
    """Mark the prediction failed with a reason people can read, unless it already finished."""
    with transaction.atomic():
        prediction = Prediction.objects.select_for_update().filter(pk=prediction_id).first()
        if prediction is None or prediction.is_final:
            return prediction
        prediction.status = Prediction.Status.FAILED
        prediction.failure_reason = reason[:MAX_FAILURE_REASON]
        prediction.finished_at = timezone.now()
        prediction.save(update_fields=["status", "failure_reason", "finished_at"])
        diagnosis_finished_notify(prediction=prediction)
        hl7_result_send(scan=prediction.scan, event="diagnosis.finished")
    logger.warning("Prediction %s failed: %s", prediction_id, reason)
    return prediction


def prediction_run(*, prediction_id: int) -> Prediction | None:
    """Diagnose one queued prediction. Safe to call twice: a finished prediction is left as it is.

    Raises ScanImageUnavailable and database errors, which may pass, for the task to retry; every
    other failure marks the prediction failed with its reason.
    """
    with transaction.atomic():
        prediction = Prediction.objects.select_for_update().filter(pk=prediction_id).first()
        if prediction is None:
            logger.warning("Prediction %s does not exist; nothing to do.", prediction_id)
            return None
        if prediction.is_final:
            logger.info("Prediction %s is already %s; nothing to do.", prediction_id, prediction.status)
            return prediction
        if prediction.attempts >= MAX_ATTEMPTS:
            return prediction_fail(prediction_id=prediction_id, reason=(
                f"Gave up after {prediction.attempts} attempts: the worker stopped while diagnosing this scan "
                "(out of memory or a model that hung). Run it again once the cause is fixed."
            ))
        # "running" here may be left over from a worker that died; acks_late redelivered it, so run again.
        prediction.status = Prediction.Status.RUNNING
        prediction.started_at = timezone.now()
        prediction.attempts += 1
        prediction.save(update_fields=["status", "started_at", "attempts"])

    prediction = Prediction.objects.select_related("scan", "model_version").filter(pk=prediction_id).first()
    if prediction is None:
        logger.info("Prediction %s was deleted meanwhile (its patient's record erased); nothing to do.", prediction_id)
        return None
    try:
        with prediction.scan.image.open("rb") as handle:
            image_bytes = handle.read()
    except OSError as exc:
        raise ScanImageUnavailable(f"The stored image could not be read ({exc.__class__.__name__}).") from exc

    try:
        ml.get_classifier(prediction.model_version)  # a first load must not count as inference time
        started = time.perf_counter()
        result = ml.classify(model_version=prediction.model_version, image_bytes=image_bytes)
        inference_ms = round((time.perf_counter() - started) * 1000)
    except Exception as exc:
        logger.exception("Inference failed for prediction %s", prediction_id)
        return prediction_fail(prediction_id=prediction_id, reason=_describe_failure(exc))

    heatmap_name = _store_heatmap(prediction, image_bytes, result.label)

    with transaction.atomic():
        current = Prediction.objects.select_for_update().filter(pk=prediction_id).first()
        if current is None or current.is_final:
            # A duplicate delivery finished first (its result and heat map stand), or the patient's record was
            # erased meanwhile: the heat map drawn here is nobody's.
            if heatmap_name:
                prediction.heatmap.storage.delete(heatmap_name)
            return current
        prediction = current
        prediction.heatmap.name = heatmap_name
        prediction.confidence = max(float(p) for p in result.probabilities.values())
        prediction.status = Prediction.Status.DONE
        prediction.label = result.label
        prediction.probabilities = {name: float(p) for name, p in result.probabilities.items()}
        prediction.out_of_scope = bool(result.out_of_scope)
        prediction.out_of_scope_reason = str(getattr(result, "out_of_scope_reason", "") or "")[:200]
        prediction.finished_at = timezone.now()
        prediction.inference_ms = inference_ms
        prediction.failure_reason = ""
        prediction.save()
        diagnosis_finished_notify(prediction=prediction)
        pacs_result_send(prediction=prediction)
        hl7_result_send(scan=prediction.scan, event="diagnosis.finished")
        inputs_result_judge(prediction=prediction)
    logger.info("Prediction %s done: %s in %d ms", prediction_id, result.label, inference_ms)
    return prediction



def _store_heatmap(prediction: Prediction, image_bytes: bytes, class_name: str) -> str:
    """Compute and store the Grad-CAM overlay of the predicted class; "" when that fails.

    The heat map explains a diagnosis and must never cost it: any failure is logged and the result
    is stored without a map.
    """
    try:
        png = ml.overlay_png(
            ml.explain(model_version=prediction.model_version, image_bytes=image_bytes, class_name=class_name)
        )
        return prediction.heatmap.storage.save(heatmap_upload_to(prediction, ""), ContentFile(png))
    except Exception:
        logger.exception("No heat map for prediction %s; the diagnosis is stored without one", prediction.pk)
        return ""
