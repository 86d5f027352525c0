"""The rejection note (IHE IOCM, Imaging Object Change Management) that asks the hospital's archive to hide the AI
result captures (and structured reports) it stored of a scan: withdrawn as entered in error, or naming the patient as
they no longer are (the details corrected, the records merged). A DICOM Key Object Selection document titled
"Rejected for Patient Safety Reasons" that lists them (PS3.16 TID 2010), with why in words. An archive that supports
IOCM stops showing them, and refuses them if they come again; one that does not keeps the note in the study, where a
reader sees that the captures were withdrawn or replaced, and why.

The captures of a patient whose data was erased are rejected as "Data Retention Policy Expired": IOCM's title for
instances the archive is to delete, not only hide (kidneyweb no longer holds a lawful basis to keep them).

Captures sent again (a withdrawal undone, the patient's details changed) are new instances (``dicom_uids``), so a
note never has to be taken back.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from django.utils import timezone

from .dicom_export import SECONDARY_CAPTURE, dicom_text
from .dicom_uids import rejection_uids
from .models import PacsDelivery, Scan

KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"  # Key Object Selection Document Storage
# PS3.16 CID 7011 (Rejected for Quality Reasons / Patient Safety Reasons / Incorrect Modality Worklist Entry): a
# result filed under the wrong patient, or made of the wrong image, must not be read.
REJECTED_FOR_PATIENT_SAFETY = ("113037", "DCM", "Rejected for Patient Safety Reasons")
DATA_RETENTION_EXPIRED = ("113039", "DCM", "Data Retention Policy Expired")
KEY_OBJECT_DESCRIPTION = ("113012", "DCM", "Key Object Description")
SERIES_NUMBER = 9902  # after the AI results' own series (dicom_export.SERIES_NUMBER)


def _code(value: str, scheme: str, meaning: str):
    from pydicom.dataset import Dataset

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


@dataclass(frozen=True)
class FiledStudy:
    """The study a scan's captures were filed in, and the note's own UIDs in it: what a note needs of the scan, kept
    on the note of an erasure, which outlives the scan (``PacsDelivery.filed_in``)."""

    study_uid: str
    study_date: str  # YYYYMMDD, or "" when the slice's header had none
    study_time: str  # HHMMSS, or ""
    accession_number: str
    institution: str
    series_uid: str  # the note's
    instance_uid: str  # the note's

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def filed_study(scan: Scan, *, series_uid: str, instance_uid: str) -> FiledStudy:
    return FiledStudy(
        study_uid=scan.dicom_study_uid,
        study_date=scan.dicom_study_date.strftime("%Y%m%d") if scan.dicom_study_date else "",
        study_time=scan.dicom_study_time.strftime("%H%M%S") if scan.dicom_study_time else "",
        accession_number=scan.dicom_accession_number, institution=dicom_text(scan.patient.organization.name),
        series_uid=series_uid, instance_uid=instance_uid)


def scan_filed_study(scan: Scan, generation: int) -> FiledStudy:
    """The study of the scan's captures, with the UIDs of the note rejecting those of ``generation``."""
    series_uid, instance_uid = rejection_uids(scan, generation)
    return filed_study(scan, series_uid=series_uid, instance_uid=instance_uid)


def rejection_note(*, study: FiledStudy, rejected: list[dict[str, str]], description: str, at: datetime.datetime,
                   filed_as: Sequence[str], title: tuple[str, str, str] = REJECTED_FOR_PATIENT_SAFETY) -> bytes:
    """The DICOM Part 10 file of the note rejecting the captures (and reports) that were sent, ``rejected`` (their
    series, instance and SOP class UIDs; no class: a capture), made ``at``, titled ``title`` (PS3.16 CID 7011),
    saying why (``description``), in the study they were filed in and under the patient as they name them,
    ``filed_as`` (``dicom_export.capture_patient``)."""
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    if not rejected:
        raise ValueError("A rejection note names at least one instance.")
    series_uid, instance_uid = study.series_uid, study.instance_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = KEY_OBJECT_SELECTION, instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = "KIDNEYWEB"
    note = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    note.SpecificCharacterSet = "ISO_IR 192"
    note.SOPClassUID, note.SOPInstanceUID = KEY_OBJECT_SELECTION, instance_uid
    made = timezone.localtime(at)
    # The captures' study and patient, as they were filed (IOCM: the note is in the study of what it rejects).
    note.StudyDate, note.StudyTime = study.study_date, study.study_time
    note.AccessionNumber = study.accession_number
    note.ReferringPhysicianName = ""
    note.StudyID = ""
    note.StudyInstanceUID = study.study_uid
    note.PatientName, note.PatientID, note.PatientBirthDate, note.PatientSex = filed_as
    note.Modality = "KO"
    note.SeriesInstanceUID, note.SeriesNumber = series_uid, SERIES_NUMBER
    note.SeriesDescription = "Rejected AI results (kidneyweb)"
    note.ReferencedPerformedProcedureStepSequence = []
    note.Manufacturer = "kidneyweb"
    note.InstitutionName = study.institution
    note.InstanceNumber = 1
    note.ContentDate, note.ContentTime = made.strftime("%Y%m%d"), made.strftime("%H%M%S")

    by_series: dict[str, list[dict[str, str]]] = {}
    for capture in rejected:
        by_series.setdefault(capture["series"], []).append(capture)
    evidence = Dataset()
    evidence.StudyInstanceUID = study.study_uid
    evidence.ReferencedSeriesSequence = []
    for series, instances in by_series.items():
        item = Dataset()
        item.SeriesInstanceUID = series
        item.ReferencedSOPSequence = [_reference(capture) for capture in instances]
        evidence.ReferencedSeriesSequence.append(item)
    note.CurrentRequestedProcedureEvidenceSequence = [evidence]

    note.ValueType = "CONTAINER"
    note.ConceptNameCodeSequence = [_code(*title)]
    note.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "2010"
    note.ContentTemplateSequence = [template]
    why = Dataset()
    why.RelationshipType, why.ValueType = "CONTAINS", "TEXT"
    why.ConceptNameCodeSequence = [_code(*KEY_OBJECT_DESCRIPTION)]
    why.TextValue = description
    images = []
    for capture in rejected:
        image = Dataset()
        # A report is no image: TID 2010 lists it as a composite object.
        image.RelationshipType = "CONTAINS"
        image.ValueType = "IMAGE" if capture.get("class", SECONDARY_CAPTURE) == SECONDARY_CAPTURE else "COMPOSITE"
        image.ReferencedSOPSequence = [_reference(capture)]
        images.append(image)
    note.ContentSequence = [why, *images]
    buffer = io.BytesIO()
    note.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def delivery_note(delivery: PacsDelivery) -> bytes:
    """The note a ``PacsDelivery`` of kind rejection sends: of an erasure, from the study it keeps (its scan is
    gone); otherwise from its scan."""
    if delivery.erasure_id is not None:
        return rejection_note(study=FiledStudy(**delivery.filed_in), rejected=delivery.rejected,
                              description=delivery.description, at=delivery.created_at, filed_as=delivery.filed_as,
                              title=DATA_RETENTION_EXPIRED)
    return rejection_note(study=scan_filed_study(delivery.scan, delivery.generation), rejected=delivery.rejected,
                          description=delivery.description, at=delivery.created_at, filed_as=delivery.filed_as)


def _reference(capture: dict[str, str]):
    from pydicom.dataset import Dataset

    reference = Dataset()
    # Notes made before reports were sent name no class: they rejected captures only.
    reference.ReferencedSOPClassUID = capture.get("class", SECONDARY_CAPTURE)
    reference.ReferencedSOPInstanceUID = capture["instance"]
    return reference
