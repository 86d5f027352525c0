"""A patient's whole record as one ZIP: for a subject access request (the patient asks for a copy of their data), or
for the record to follow them to another hospital.

Human- and machine-readable side by side: per scan the slice as stored, the heat map, the PDF report, the FHIR
R4 Bundle a hospital system files and, for a DICOM slice, the result as an archive takes it (DICOM); for the record
its details, corrections and merges (JSON) and who opened it (CSV). Scans withdrawn as entered in error are left out,
since they may show another person; the README in the ZIP counts them.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from typing import IO, Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import FileResponse
from django.utils import timezone

from . import access_log, fhir, hl7, reports, selectors
from .models import Patient, Scan


@dataclass(frozen=True)
class RecordExport:
    scans: int
    withdrawn_left_out: int
    missing_files: int  # stored images the storage had lost, named in the README instead


def _when(value) -> str | None:
    return value.isoformat() if value else None


def _person(user: AbstractBaseUser | None) -> dict[str, str] | None:
    if user is None:
        return None
    return {"username": user.get_username(), "name": user.get_full_name()}


def _patient_json(patient: Patient) -> dict[str, Any]:
    return {
        "id": patient.pk, "mrn": patient.mrn, "name": patient.name, "birth_date": patient.birth_date.isoformat(),
        "sex": patient.get_sex_display(), "registered_at": _when(patient.created_at),
        "refused_ai_training": patient.training_opt_out,
        "former_mrns": selectors.patient_former_mrns(patient=patient),
        "corrections": [{"at": _when(change.changed_at), "by": _person(change.changed_by), "before": change.before,
                         "after": change.after} for change in selectors.patient_changes(patient=patient)],
        "merges": [{"merged_at": _when(merge.merged_at), "duplicate_mrn": merge.duplicate.mrn, "into_mrn": merge.into.mrn,
                    "by": _person(merge.merged_by), "reason": merge.reason, "undone_at": _when(merge.undone_at)}
                   for merge in selectors.patient_merges(patient=patient)],
    }


def _scan_json(scan: Scan) -> dict[str, Any]:
    return {
        "id": scan.pk, "uploaded_at": _when(scan.uploaded_at), "uploaded_by": _person(scan.uploaded_by),
        "format": scan.format, "width": scan.width, "height": scan.height, "sha256": scan.sha256,
        "dicom": {"study_instance_uid": scan.dicom_study_uid, "series_instance_uid": scan.dicom_series_uid,
                  "sop_instance_uid": scan.dicom_instance_uid, "accession_number": scan.dicom_accession_number,
                  "study_date": _when(scan.dicom_study_date), "study_description": scan.dicom_study_description}
        if scan.dicom_study_uid else None,
        "results": [{"id": p.pk, "model_version": p.model_version.name, "status": p.status, "label": p.label or None,
                     "confidence": p.confidence, "probabilities": p.probabilities, "queued_at": _when(p.queued_at),
                     "finished_at": _when(p.finished_at), "out_of_scope": p.out_of_scope,
                     "failure_reason": p.failure_reason or None} for p in scan.predictions.all()],
        "reviews": [{"label": r.label, "agrees_with_ai": r.agrees_with_ai, "comment": r.comment,
                     "reviewed_by": _person(r.reviewed_by), "reviewed_at": _when(r.reviewed_at)}
                    for r in scan.reviews.all()],
    }


def _copy(archive: zipfile.ZipFile, field, name: str) -> bool:
    try:
        with field.open("rb") as handle:
            archive.writestr(name, handle.read())
    except (OSError, ValueError):
        return False
    return True


def _dicom_results(archive: zipfile.ZipFile, scan: Scan, folder: str) -> None:
    """Add the result of a slice that came as DICOM as the archive takes it (the capture, and the structured report
    where the header named the slice), so that another hospital's PACS can import it beside the study."""
    from .dicom_export import NotExportable, scan_result_capture
    from .dicom_report import scan_result_report

    for name, build in (("result.dcm", scan_result_capture), ("result-sr.dcm", scan_result_report)):
        try:
            # Fast deflate: a capture is a megabyte of raw pixels, on which the default level took half the export's
            # added time.
            archive.writestr(f"{folder}/{name}", build(scan=scan), compresslevel=1)
        except (NotExportable, OSError):
            # No study, no finished result or no slice for a report to name (scan.json says which), or the stored
            # slice was lost (the README counts it).
            continue


def _access_log_csv(patient: Patient) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(access_log.header(with_patient=False))
    zone = timezone.get_current_timezone()
    for access in selectors.patient_accesses(patient=patient).order_by("at", "id"):
        writer.writerow(access_log.row(access, zone=zone, with_patient=False))
    return out.getvalue()


def patient_record_zip(*, patient: Patient, user: AbstractBaseUser, base_url: str, into: IO[bytes]) -> RecordExport:
    """Write the patient's record, as ``user`` sees it, as a ZIP into ``into``. ``base_url`` is the site's address
    (``https://host``), which the FHIR Bundles and PDF reports link to."""
    scans = list(selectors.scan_list(user=user, patient=patient))
    kept = [scan for scan in scans if not scan.is_withdrawn]
    missing = 0
    with zipfile.ZipFile(into, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("patient.json", json.dumps(_patient_json(patient), indent=2, ensure_ascii=False))
        archive.writestr("access-log.csv", _access_log_csv(patient))
        for scan in kept:
            folder = f"scans/{scan.pk}"
            archive.writestr(f"{folder}/scan.json", json.dumps(_scan_json(scan), indent=2, ensure_ascii=False))
            extension = "jpg" if scan.format == Scan.Format.JPEG else "png"
            missing += not _copy(archive, scan.image, f"{folder}/slice.{extension}")
            prediction = scan.latest_prediction
            if prediction is not None and prediction.heatmap:
                missing += not _copy(archive, prediction.heatmap, f"{folder}/heatmap.png")
            archive.writestr(f"{folder}/report.pdf", reports.scan_report_pdf(scan=scan, user=user))
            archive.writestr(f"{folder}/result.fhir.json", json.dumps(
                fhir.scan_fhir_bundle(scan=scan, base_url=base_url), indent=2, ensure_ascii=False))
            archive.writestr(f"{folder}/result.hl7", hl7.scan_result_message(scan=scan, base_url=base_url))
            _dicom_results(archive, scan, folder)
        summary = RecordExport(scans=len(kept), withdrawn_left_out=len(scans) - len(kept), missing_files=missing)
        archive.writestr("README.txt", _readme(patient, user, summary))
    return summary


# Scans one request builds in time (up to about 160 ms each for a DICOM slice, benchmarks/record_export.py: some
# 40 s): a larger record is built by the worker (services.record_export_request).
MAX_DIRECT_SCANS = 250


class TooLargeForOneRequest(Exception):
    """The record has more scans than one request builds in time: ask the worker for it."""

    def __init__(self, scans: int) -> None:
        super().__init__(f"This record has {scans} scans, more than the {MAX_DIRECT_SCANS} one request builds in "
                         "time.")
        self.scans = scans


def zip_download(handle: IO[bytes], *, filename: str) -> FileResponse:
    """A ZIP of patient data as a download that browsers and proxies keep no copy of."""
    response = FileResponse(handle, as_attachment=True, content_type="application/zip", filename=filename)
    response["Cache-Control"] = "private, no-store"
    return response


# Kept in memory up to this size, then in a temporary file: a record of a few hundred scans is tens of megabytes.
SPOOL_BYTES = 32 * 1024 * 1024


def patient_record_response(*, patient: Patient, user: AbstractBaseUser, base_url: str) -> FileResponse:
    """The ZIP of ``patient_record_zip`` built in this request, as a download; raises TooLargeForOneRequest for a
    record of more than MAX_DIRECT_SCANS scans (not withdrawn)."""
    scans = selectors.scan_list(user=user, patient=patient).filter(withdrawn_at=None).count()
    if scans > MAX_DIRECT_SCANS:
        raise TooLargeForOneRequest(scans)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    patient_record_zip(patient=patient, user=user, base_url=base_url, into=spool)
    spool.seek(0)
    return zip_download(spool, filename=f"kidneyweb-record-{patient.pk}-{timezone.localdate():%Y%m%d}.zip")


def _readme(patient: Patient, user: AbstractBaseUser, summary: RecordExport) -> str:
    lines = [
        f"The kidneyweb record of {patient.name} (MRN {patient.mrn}), exported "
        f"{timezone.localtime():%Y-%m-%d %H:%M} by {user.get_username()}.",
        "",
        "patient.json      the details, their corrections, former MRNs and merges of records",
        "access-log.csv    who opened the record, its scans, images and reports, and when",
        "scans/<id>/       per scan: scan.json (when and by whom uploaded, every AI result, every review),",
        "                  slice.png or .jpg (as stored), heatmap.png (where the model looked), report.pdf,",
        "                  result.fhir.json (the result as a FHIR R4 Bundle, for another hospital's system),",
        "                  result.hl7 (the same as an HL7 v2.5.1 ORU^R01 message, for a system that takes those),",
        "                  and for a slice that came as DICOM, result.dcm and result-sr.dcm (the result as a",
        "                  DICOM capture and structured report, for another hospital's archive to import)",
        "",
        f"{summary.scans} scan(s).",
    ]
    if summary.withdrawn_left_out:
        lines.append(f"{summary.withdrawn_left_out} scan(s) withdrawn as entered in error are left out: they may "
                     "show another person.")
    if summary.missing_files:
        lines.append(f"{summary.missing_files} stored image(s) could not be read and are missing here.")
    lines += ["", "AI results are decision support, read by a clinician: the reviews say what they concluded.",
              "Review this export before handing it over."]
    return "\n".join(lines) + "\n"
