"""A scan's AI result as a DICOM Structured Report (Comprehensive SR, TID 1500 Measurement Report), the form IHE's
AI Results profile (AIR) gives AI findings: coded, so that the archive, a viewer or a reporting system can read what
the AI found without reading pixels. It says what the capture (``dicom_export``) shows: the class the AI found, coded
in SNOMED CT as the FHIR export codes it, with its probability, by which model, from which slice; and the
clinician's reading when there is one, which makes it a verified, final report.

Its UIDs are made as the capture's are (``dicom_uids.report_uids``), so the same report fetched again is the same
instance, and a review makes a new one.
"""

from __future__ import annotations

import io
import warnings

from .dicom_export import NotExportable, content_time, dicom_text, exportable_result, filed_in_study
from .dicom_uids import report_uids, result_uid
from .fhir import SNOMED_CLASSES
from .models import Prediction, Review, Scan

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR Storage
# After the captures' series (9901) and the rejection notes' (9902), so that a viewer lists them after the
# scanner's own.
SERIES_NUMBER = 9903
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def finding_code(label: str):
    """The coded finding of a class: its SNOMED CT concept, the one the FHIR export names too; for a model trained
    on other classes, kidneyweb's own code, which a viewer still shows by its meaning."""
    from pydicom.sr.coding import Code

    if label in SNOMED_CLASSES:
        code, meaning = SNOMED_CLASSES[label]
        return Code(code, "SCT", meaning)
    return Code(dicom_text(label, 16).upper() or "UNKNOWN", "99KIDNEYWEB", label or "Unknown")


def scan_result_report(*, scan: Scan, prediction: Prediction | None = None, review: Review | None = None) -> bytes:
    """The DICOM Part 10 file of the structured report of the scan's AI result ``prediction`` with the clinician's
    ``review`` of it (None: the AI result alone); without ``prediction``, the newest result with its current review.
    Raises NotExportable as the capture does, and for a slice whose header lacked its series or instance UID: a
    report must name the image it speaks of."""
    with warnings.catch_warnings():
        # The record keeps a patient's name as written ("Grace Hopper"), and a reviewer may have only a user name,
        # not DICOM's family^given parts; the capture writes them so too.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        return _report(scan=scan, prediction=prediction, review=review)


def _report(*, scan: Scan, prediction: Prediction | None, review: Review | None) -> bytes:
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code
    from pydicom.valuerep import DT

    prediction, review = exportable_result(scan=scan, prediction=prediction, review=review)
    if not (scan.dicom_instance_uid and scan.dicom_series_uid):
        raise NotExportable("The slice's DICOM header named no series or instance UID, and a structured report must "
                            "name the image it speaks of: fetch the result as a capture instead.")
    version = prediction.model_version
    organization = scan.patient.organization
    series_uid, instance_uid = report_uids(scan, prediction, review)

    # The slice as the report's evidence: highdicom takes the patient and study from it.
    source = Dataset()
    source.SOPClassUID = scan.dicom_sop_class_uid or CT_IMAGE  # the listener and uploads took CT slices only
    source.SOPInstanceUID, source.SeriesInstanceUID = scan.dicom_instance_uid, scan.dicom_series_uid
    filed_in_study(source, scan)
    source.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: patients' names are not all Latin
    image = hd.sr.SourceImageForMeasurementGroup(source.SOPClassUID, source.SOPInstanceUID)

    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=result_uid("kidneyweb-model", version.sha256), name="kidneyweb",
            manufacturer_name="kidneyweb", model_name=dicom_text(version.name)))
    person = None
    if review is not None:
        person = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=_person_name(review), login_name=dicom_text(review.reviewed_by.get_username()),
                organization_name=dicom_text(organization.name)))
    kidney = hd.sr.FindingSite(codes.SCT.Kidney)
    # An image unlike those the model learnt from has no finding the AI can vouch for.
    found = codes.SCT.Indeterminate if prediction.out_of_scope else finding_code(prediction.label)
    groups = [hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=result_uid("kidneyweb-ai-finding", instance_uid),
                                                     identifier="AI finding"),
        algorithm_id=hd.sr.AlgorithmIdentification(name="kidneyweb", version=dicom_text(version.name),
                                                   manufacturer="kidneyweb"),
        finding_sites=[kidney], source_images=[image],
        finding_type=found,
        # The probability is of a class; an indeterminate finding has none.
        measurements=[] if prediction.out_of_scope else [hd.sr.Measurement(
            name=codes.DCM.Probability, value=round(float(prediction.confidence or 0), 4),
            unit=Code("1", "UCUM", "no units"))],
    )]
    if review is not None:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=result_uid("kidneyweb-reading", instance_uid),
                                                         identifier="Clinician's reading"),
            finding_sites=[kidney], source_images=[image],
            finding_type=finding_code(review.label)))
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device),
        procedure_reported=codes.cid100.CTUnspecifiedBodyRegion, imaging_measurements=groups)

    report = hd.sr.ComprehensiveSR(
        evidence=[source], content=content[0], series_instance_uid=series_uid, series_number=SERIES_NUMBER,
        sop_instance_uid=instance_uid, instance_number=scan.pk, manufacturer="kidneyweb",
        institution_name=dicom_text(organization.name), is_complete=True,
        # The AI's result is preliminary until a clinician read it; their reading makes it final and verified.
        is_final=review is not None, is_verified=review is not None,
        verifying_observer_name=_person_name(review) if review else None,
        verifying_organization=dicom_text(organization.name) if review else None,
        series_description=dicom_text(f"AI result ({version.name}), decision support"))
    # When the content was made, as the capture says: highdicom writes when it built the file (and its own part in
    # it), which would make the same report differ each time it is fetched.
    finished = content_time(prediction, review)
    report.ContentDate, report.ContentTime = finished.strftime("%Y%m%d"), finished.strftime("%H%M%S")
    report.InstanceCreationDate, report.InstanceCreationTime = report.ContentDate, report.ContentTime
    report.SeriesDate, report.SeriesTime = report.ContentDate, report.ContentTime
    for equipment in report.get("ContributingEquipmentSequence", []):
        equipment.ContributionDateTime = DT(finished)
    if review is not None:
        report.VerifyingObserverSequence[0].VerificationDateTime = DT(finished)
    buffer = io.BytesIO()
    report.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _person_name(review: Review) -> str:
    """The reviewer as a DICOM person name (family^given), or their user name when the account has no names."""
    user = review.reviewed_by
    family, given = dicom_text(user.last_name, 30), dicom_text(user.first_name, 30)
    return f"{family}^{given}" if family or given else dicom_text(user.get_username())


__all__ = ["COMPREHENSIVE_SR", "NotExportable", "finding_code", "scan_result_report"]
