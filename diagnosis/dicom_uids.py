"""The UIDs of the DICOM captures kidneyweb makes of its results (``dicom_export``), in one place, so that a
notification can name the instances an archive may hold without building them."""

from __future__ import annotations

import uuid

from .models import Prediction, Scan


def result_uid(*parts: str) -> str:
    """A UID under 2.25 (ISO/IEC 9834-8: a UUID written as a decimal) made from ``parts``: the same parts give the
    same UID, and parts that name a globally unique study give one no other site makes for other content."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(parts)).int)


def capture_uids(scan: Scan, prediction: Prediction) -> tuple[str, str]:
    """The series and instance UIDs of the capture of ``prediction``: one series per study and model version, one
    instance per result."""
    version = prediction.model_version
    source = scan.dicom_instance_uid or scan.sha256
    return (result_uid("kidneyweb-result-series", scan.dicom_study_uid, version.sha256),
            result_uid("kidneyweb-result", scan.dicom_study_uid, source, version.sha256, str(prediction.pk)))


def result_instance_uids(*, scan: Scan) -> list[str]:
    """The instances the scan's finished results are exported as (oldest first): what an archive may hold of it."""
    if not scan.dicom_study_uid:
        return []
    done = scan.predictions.filter(status=Prediction.Status.DONE).select_related("model_version").order_by(
        "queued_at", "id")
    return [capture_uids(scan, prediction)[1] for prediction in done]
