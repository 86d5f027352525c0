"""DICOM instances a hospital's archive sends (DICOMweb STOW-RS): each is filed, as a scan, for the patient whose
MRN its header's PatientID names, and diagnosed like any upload.

Each instance stands alone: one that is refused (an unknown or ambiguous patient ID, not a CT slice) is answered
with its reason and does not undo the others. An archive retries by design, so an instance already stored for
that patient is answered with the scan it became rather than refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction

from .. import ml, selectors
from ..models import DicomStoreRefusal, Scan
from .scans import NoActiveModelVersion, dicom_refusals_resolve, scan_create

logger = logging.getLogger(__name__)

# PS3.4's status codes for a refused instance, as a DICOMweb store answers them.
FAILURE_PROCESSING = 0x0110  # refused for a reason the message gives
FAILURE_UNREADABLE = 0xC000  # "cannot understand": not a DICOM instance at all
FAILURE_OUT_OF_RESOURCES = 0xA700  # nothing can be diagnosed now (no active model): send it again later
# Sent to one study's address but of another study. PS3.18 names no code for it; this is the "cannot understand"
# code that dcm4chee, a widely used archive, answers it with.
FAILURE_OTHER_STUDY = 0xC409


@dataclass(frozen=True)
class StoredInstance:
    """What became of one instance: the scan it was filed as, or why it was refused."""

    sop_class_uid: str
    sop_instance_uid: str
    scan: Scan | None = None
    patient_id: str = ""  # as the header named it
    already_stored: bool = False  # sent before: ``scan`` is the one it became then
    failure_code: int | None = None
    failure: str = ""


def _stored_as(exc: ValidationError) -> int | None:
    """The scan a refused upload names as already holding the slice (scan_create's "already_stored"), if any."""
    for error in getattr(exc, "error_dict", {}).get("image", []):
        if error.code == "already_stored":
            return int(error.params["scan"])
    return None


DICOM = "application/dicom"


def dicom_instance_store(*, data: bytes, uploaded_by: AbstractBaseUser, media_type: str = DICOM,
                         study_instance_uid: str = "") -> StoredInstance:
    """File one DICOM Part 10 instance for the patient its header names in the sender's organization.
    ``media_type`` is what the sender called it ("" when it did not say); ``study_instance_uid``, when given, is
    the study the sender stored it into (``POST /studies/{uid}``), which the instance must belong to."""
    if media_type not in ("", DICOM):
        return StoredInstance("", "", failure_code=FAILURE_UNREADABLE,
                              failure=f"A part of type {media_type}, not {DICOM}: not stored.")
    if not ml.is_dicom(data):
        return StoredInstance("", "", failure_code=FAILURE_UNREADABLE,
                              failure="Not a DICOM Part 10 instance (no DICM preamble).")
    try:
        header = ml.dicom_header(data)
    except ValueError as exc:
        return StoredInstance("", "", failure_code=FAILURE_UNREADABLE, failure=f"The DICOM header cannot be read: {exc}.")

    def refused(reason: str, code: int = FAILURE_PROCESSING) -> StoredInstance:
        return StoredInstance(header.sop_class_uid, header.sop_instance_uid, patient_id=header.patient_id,
                              failure_code=code, failure=reason)

    if study_instance_uid and header.study_instance_uid != study_instance_uid:
        belongs = f"study {header.study_instance_uid}" if header.study_instance_uid else "no study (no StudyInstanceUID)"
        return refused(f"Of another study than the one addressed: it belongs to {belongs}, not to study "
                       f"{study_instance_uid}. Not stored.", FAILURE_OTHER_STUDY)
    if not header.patient_id:
        return refused("The header names no patient ID (an anonymised export?): upload it for a chosen patient "
                       "instead (POST /api/v1/scans/).")
    patients = selectors.patients_named_by_dicom_id(user=uploaded_by, dicom_id=header.patient_id)
    if not patients:
        return refused(f"No patient with MRN {header.patient_id!r} in your organization: register them first "
                       "(POST /api/v1/patients/), then send it again.")
    if len(patients) > 1:
        mrns = ", ".join(repr(patient.mrn) for patient in patients)
        return refused(f"Patient ID {header.patient_id!r} matches the MRNs of {len(patients)} patients here ({mrns}): "
                       "upload it for the right one (POST /api/v1/scans/).")
    name = f"{header.sop_instance_uid or 'instance'}.dcm"
    try:
        scan = scan_create(patient=patients[0], file=ContentFile(data, name=name), uploaded_by=uploaded_by)
    except NoActiveModelVersion as exc:
        return refused(str(exc), FAILURE_OUT_OF_RESOURCES)
    except ValidationError as exc:
        earlier = _stored_as(exc)
        if earlier is not None:
            return StoredInstance(header.sop_class_uid, header.sop_instance_uid, patient_id=header.patient_id,
                                  scan=Scan.objects.get(pk=earlier), already_stored=True)
        return refused(" ".join(exc.messages))
    return StoredInstance(header.sop_class_uid, header.sop_instance_uid, patient_id=header.patient_id, scan=scan)


def dicom_instances_store(*, instances: Sequence[tuple[str, bytes]], uploaded_by: AbstractBaseUser,
                          study_instance_uid: str = "") -> list[StoredInstance]:
    """File each instance (its media type and bytes) as ``dicom_instance_store`` does, in order, into
    ``study_instance_uid`` when the sender named one; one's refusal does not undo another. Refusals are kept for
    the organization's administrators (DicomStoreRefusal); an instance stored now resolves the earlier refusals of it.

    Raises NoActiveModelVersion, with nothing filed or recorded, while no model version is active: the sender should
    send them all again later, not learn of as many refusals."""
    if selectors.model_version_active() is None:
        raise NoActiveModelVersion()
    outcomes = [dicom_instance_store(data=data, uploaded_by=uploaded_by, media_type=media_type,
                                     study_instance_uid=study_instance_uid)
                for media_type, data in instances]
    _refusals_record(outcomes=outcomes, uploaded_by=uploaded_by)
    refused = sum(outcome.scan is None for outcome in outcomes)
    logger.info("DICOM store by %s: %d instance(s), %d filed, %d already stored, %d refused",
                uploaded_by.get_username(), len(outcomes), sum(o.scan is not None and not o.already_stored
                                                               for o in outcomes),
                sum(o.already_stored for o in outcomes), refused)
    return outcomes


def _refusals_record(*, outcomes: Sequence[StoredInstance], uploaded_by: AbstractBaseUser) -> None:
    organization = selectors.organization_of(uploaded_by)
    if organization is None:
        return
    with transaction.atomic():
        DicomStoreRefusal.objects.bulk_create(
            DicomStoreRefusal(organization=organization, sent_by=uploaded_by, sop_instance_uid=o.sop_instance_uid[:64],
                              patient_id=o.patient_id[:64], failure_code=o.failure_code or 0, reason=o.failure[:300])
            for o in outcomes if o.scan is None)
        # A new scan resolved its instance's refusals as it was stored; one sent again that was stored before
        # (refused meanwhile, say, when sent to another study's address) resolves them here.
        for outcome in outcomes:
            if outcome.already_stored and outcome.scan is not None:
                dicom_refusals_resolve(scan=outcome.scan, instance_uid=outcome.sop_instance_uid)
