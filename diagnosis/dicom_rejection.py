"""The rejection note (IHE IOCM, Imaging Object Change Management) that asks the hospital's archive to hide the AI
result captures it stored of a scan withdrawn as entered in error: a DICOM Key Object Selection document titled
"Rejected for Patient Safety Reasons" that lists them (PS3.16 TID 2010). An archive that supports IOCM stops
showing them, and refuses them if they come again; one that does not keeps the note in the study, where a reader
sees that the captures were withdrawn and why.

The captures of a scan that was withdrawn and restored are sent again as new instances (``dicom_uids``), so the
note never has to be taken back.
"""

from __future__ import annotations

import io

from django.utils import timezone

from .dicom_export import SECONDARY_CAPTURE, archive_patient_id, dicom_text
from .dicom_uids import rejection_uids
from .models import Patient, ScanWithdrawal

KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"  # Key Object Selection Document Storage
# PS3.16 CID 7011 (Rejected for Quality Reasons / Patient Safety Reasons / Incorrect Modality Worklist Entry): a
# result filed under the wrong patient, or made of the wrong image, must not be read.
REJECTED_FOR_PATIENT_SAFETY = ("113037", "DCM", "Rejected for Patient Safety Reasons")
KEY_OBJECT_DESCRIPTION = ("113012", "DCM", "Key Object Description")
SERIES_NUMBER = 9902  # after the AI results' own series (dicom_export.SERIES_NUMBER)


def _code(value: str, scheme: str, meaning: str):
    from pydicom.dataset import Dataset

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def rejection_note(*, withdrawal: ScanWithdrawal, rejected: list[dict[str, str]]) -> bytes:
    """The DICOM Part 10 file of the note rejecting the captures ``rejected`` (their series and instance UIDs) for
    the scan's ``withdrawal``, under the patient and in the study they were filed in."""
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    if not rejected:
        raise ValueError("A rejection note names at least one instance.")
    scan = withdrawal.scan
    series_uid, instance_uid = rejection_uids(scan, withdrawal.pk)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = KEY_OBJECT_SELECTION, instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = "KIDNEYWEB"
    note = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    note.SpecificCharacterSet = "ISO_IR 192"
    note.SOPClassUID, note.SOPInstanceUID = KEY_OBJECT_SELECTION, instance_uid
    withdrawn = timezone.localtime(withdrawal.withdrawn_at)
    # The captures' study and patient, as they were filed (IOCM: the note is in the study of what it rejects).
    note.StudyDate = scan.dicom_study_date.strftime("%Y%m%d") if scan.dicom_study_date else ""
    note.StudyTime = scan.dicom_study_time.strftime("%H%M%S") if scan.dicom_study_time else ""
    note.AccessionNumber = scan.dicom_accession_number
    note.ReferringPhysicianName = ""
    note.StudyID = ""
    note.StudyInstanceUID = scan.dicom_study_uid
    note.PatientName = dicom_text(scan.patient.name)
    note.PatientID = dicom_text(archive_patient_id(scan))
    note.PatientBirthDate = scan.patient.birth_date.strftime("%Y%m%d")
    note.PatientSex = "" if scan.patient.sex == Patient.Sex.UNKNOWN else scan.patient.sex
    note.Modality = "KO"
    note.SeriesInstanceUID, note.SeriesNumber = series_uid, SERIES_NUMBER
    note.SeriesDescription = "Rejected AI results (kidneyweb)"
    note.ReferencedPerformedProcedureStepSequence = []
    note.Manufacturer = "kidneyweb"
    note.InstitutionName = dicom_text(scan.patient.organization.name)
    note.InstanceNumber = 1
    note.ContentDate, note.ContentTime = withdrawn.strftime("%Y%m%d"), withdrawn.strftime("%H%M%S")

    by_series: dict[str, list[str]] = {}
    for capture in rejected:
        by_series.setdefault(capture["series"], []).append(capture["instance"])
    study = Dataset()
    study.StudyInstanceUID = scan.dicom_study_uid
    study.ReferencedSeriesSequence = []
    for series, instances in by_series.items():
        item = Dataset()
        item.SeriesInstanceUID = series
        item.ReferencedSOPSequence = [_reference(uid) for uid in instances]
        study.ReferencedSeriesSequence.append(item)
    note.CurrentRequestedProcedureEvidenceSequence = [study]

    note.ValueType = "CONTAINER"
    note.ConceptNameCodeSequence = [_code(*REJECTED_FOR_PATIENT_SAFETY)]
    note.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "2010"
    note.ContentTemplateSequence = [template]
    by = withdrawal.withdrawn_by.get_full_name() or withdrawal.withdrawn_by.get_username()
    description = Dataset()
    description.RelationshipType, description.ValueType = "CONTAINS", "TEXT"
    description.ConceptNameCodeSequence = [_code(*KEY_OBJECT_DESCRIPTION)]
    description.TextValue = (f"AI results withdrawn in kidneyweb as entered in error by {by} on "
                             f"{withdrawn:%Y-%m-%d %H:%M}: {withdrawal.reason}")
    images = []
    for capture in rejected:
        image = Dataset()
        image.RelationshipType, image.ValueType = "CONTAINS", "IMAGE"
        image.ReferencedSOPSequence = [_reference(capture["instance"])]
        images.append(image)
    note.ContentSequence = [description, *images]
    buffer = io.BytesIO()
    note.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _reference(instance_uid: str):
    from pydicom.dataset import Dataset

    reference = Dataset()
    reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = SECONDARY_CAPTURE, instance_uid
    return reference
