"""The UIDs of the DICOM captures and reports kidneyweb makes of its results (``dicom_export``, ``dicom_report``), in
one place, so that a notification can name the instances an archive may hold without building them."""

from __future__ import annotations

import uuid

from .models import Prediction, Review, Scan


def result_uid(*parts: str) -> str:
    """A UID under 2.25 (ISO/IEC 9834-8: a UUID written as a decimal) made from ``parts``: the same parts give the
    same UID, and parts that name a globally unique study give one no other site makes for other content."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(parts)).int)


def capture_uids(scan: Scan, prediction: Prediction, review: Review | None = None) -> tuple[str, str]:
    """The series and instance UIDs of the capture of ``prediction`` (with a clinician's ``review`` of it): one series
    per study and model version, one instance per result, and one more per review of it."""
    return _result_uids("kidneyweb-result", scan, prediction, review)


def report_uids(scan: Scan, prediction: Prediction, review: Review | None = None) -> tuple[str, str]:
    """The series and instance UIDs of the structured report (DICOM SR) of ``prediction``, made as its capture's
    are, in a series of its own: viewers show reports apart from images."""
    return _result_uids("kidneyweb-report", scan, prediction, review)


def _result_uids(what: str, scan: Scan, prediction: Prediction, review: Review | None) -> tuple[str, str]:
    version = prediction.model_version
    source = scan.dicom_instance_uid or scan.sha256
    parts = [scan.dicom_study_uid, source, version.sha256, str(prediction.pk)]
    if scan.capture_generation:
        # Restored after a withdrawal: new instances, as the archive may have rejected the earlier ones.
        parts.append(f"generation-{scan.capture_generation}")
    # The capture's names are as they were before reports came, so that its UIDs stay what archives hold.
    reviewed = "kidneyweb-reviewed-result" if what == "kidneyweb-result" else f"{what}-reviewed"
    instance = (result_uid(what, *parts) if review is None else result_uid(reviewed, *parts, str(review.pk)))
    return result_uid(f"{what}-series", scan.dicom_study_uid, version.sha256), instance


def rejection_uids(scan: Scan, generation: int) -> tuple[str, str]:
    """The series and instance UIDs of the rejection note (IHE IOCM) of the scan's captures of ``generation``: one
    series per study, one note per generation of captures."""
    source = scan.dicom_instance_uid or scan.sha256
    return (result_uid("kidneyweb-rejection-series", scan.dicom_study_uid),
            result_uid("kidneyweb-rejection", scan.dicom_study_uid, source, str(scan.pk), str(generation)))


def erasure_rejection_uids(scan: Scan, erasure_id: int, index: int) -> tuple[str, str]:
    """The series and instance UIDs of the ``index``-th note rejecting the scan's captures for erasure ``erasure_id``
    (one per patient the captures were filed under): in the study's series of rejection notes."""
    source = scan.dicom_instance_uid or scan.sha256
    return (result_uid("kidneyweb-rejection-series", scan.dicom_study_uid),
            result_uid("kidneyweb-erasure-rejection", scan.dicom_study_uid, source, str(scan.pk), str(erasure_id),
                       str(index)))


def result_instance_uids(*, scan: Scan) -> list[str]:
    """The instances the scan's finished results, and the reviews of them, are exported as (oldest first; each
    capture, then its structured report): what an archive may hold of it."""
    return result_instance_uids_of(scans=[scan])[scan.pk]


def result_instance_uids_of(*, scans: list[Scan]) -> dict[int, list[str]]:
    """``result_instance_uids`` of each scan, by scan id, in two queries whatever their number (an erasure at the end
    of a pilot takes thousands)."""
    uids: dict[int, list[str]] = {scan.pk: [] for scan in scans}
    with_study = {scan.pk: scan for scan in scans if scan.dicom_study_uid}
    if not with_study:
        return uids
    done = list(Prediction.objects.filter(scan_id__in=with_study, status=Prediction.Status.DONE)
                .select_related("model_version").order_by("queued_at", "id"))
    reviews: dict[int, list[Review]] = {}
    for review in Review.objects.filter(prediction__in=done).order_by("reviewed_at", "id"):
        reviews.setdefault(review.prediction_id, []).append(review)
    for prediction in done:
        scan = with_study[prediction.scan_id]
        # A report names its slice, so a slice whose header named none has none (dicom_report).
        forms = (capture_uids, report_uids) if scan.dicom_series_uid and scan.dicom_instance_uid else (capture_uids,)
        for review in [None, *reviews.get(prediction.pk, [])]:
            uids[scan.pk].extend(form(scan, prediction, review)[1] for form in forms)
    return uids
