"""A scan's result as a FHIR R4 Bundle, so that a hospital system can file it in the patient's record.

The bundle (type ``collection``) holds a DiagnosticReport first, then the Patient, the slice as Media,
the model as Device, the AI result as an Observation and the clinician's reading as another. It is
built from what is stored, so asking again gives the same bundle until something changes, and the
same ``urn:uuid`` full URLs: a receiving system recognises a report it filed before by its identifier
(the scan's address) and updates it, e.g. to ``final`` after the review or ``entered-in-error`` after
a withdrawal. A slice refiled for the right patient adds a Provenance naming the report it was first filed as.

A class is coded twice: in a local code system (``CLASS_SYSTEM``), which says exactly what the model
was trained to tell apart, and, for the four classes of the CT KIDNEY data set, with the nearest SNOMED CT
concept, so that a receiving system can file and search it with its other findings without a mapping of
its own. A model version with other class names gets the local code only.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.conf import settings
from django.urls import reverse

from . import selectors
from .models import Patient, Prediction, Review, Scan
from .reports import NOTICE

FHIR_JSON = "application/fhir+json"
CLASS_SYSTEM = "urn:kidneyweb:kidney-ct-class"
SNOMED_SYSTEM = "http://snomed.info/sct"
# The nearest SNOMED CT concept of each class: what a radiologist would code for that slice reading.
SNOMED_CLASSES = {
    "Normal": ("281900007", "No abnormality detected"),
    "Cyst": ("722223000", "Cyst of kidney"),
    "Stone": ("95570007", "Kidney stone"),
    "Tumor": ("126880001", "Neoplasm of kidney"),
}
REPORT_CODE = {
    "coding": [{"system": "urn:kidneyweb:report", "code": "kidney-ct-slice",
                "display": "Kidney CT slice classification"}],
    "text": "Kidney CT slice: Normal, Cyst, Stone or Tumor",
}
URI_SYSTEM = "urn:ietf:rfc:3986"  # an identifier that is itself an address
DICOM_UID_SYSTEM = "urn:dicom:uid"  # DICOM UIDs as FHIR identifiers: the value is urn:oid:<uid>
_RADIOLOGY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                          "display": "Radiology"}]}
_IMAGING = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging",
                        "display": "Imaging"}]}
_ACCESSION_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN",
                               "display": "Accession ID"}]}
_MRN_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
                         "display": "Medical record number"}]}
_GENDER = {Patient.Sex.FEMALE: "female", Patient.Sex.MALE: "male", Patient.Sex.OTHER: "other"}


def mrn_system(patient: Patient) -> str:
    """The identifier system of the organization's medical record numbers, as the hospital names it
    (``KIDNEYWEB_FHIR_MRN_SYSTEM``, ``{organization}`` standing for the organization's slug)."""
    return _organizations(settings.KIDNEYWEB_FHIR_MRN_SYSTEM, patient)


def accession_system(patient: Patient) -> str:
    """The identifier system of the organization's accession numbers (``KIDNEYWEB_FHIR_ACCESSION_SYSTEM``)."""
    return _organizations(settings.KIDNEYWEB_FHIR_ACCESSION_SYSTEM, patient)


def _organizations(system: str, patient: Patient) -> str:
    return system.replace("{organization}", patient.organization.slug)


def _report_identifier(scan_pk: int, base_url: str) -> dict[str, str]:
    """A scan's report as a receiving system files it: by the scan's API address."""
    return {"system": URI_SYSTEM, "value": base_url + reverse("api:scan-detail", kwargs={"pk": scan_pk})}


def _when(value) -> str | None:
    return value.isoformat() if value else None


def _person(user) -> dict[str, str]:
    return {"display": user.get_full_name() or user.get_username()}


def _class(label: str) -> dict[str, Any]:
    coding = [{"system": CLASS_SYSTEM, "code": label, "display": label}]
    if label in SNOMED_CLASSES:
        code, display = SNOMED_CLASSES[label]
        coding.append({"system": SNOMED_SYSTEM, "code": code, "display": display})
    return {"coding": coding, "text": label}


def report_status(scan: Scan, prediction: Prediction | None, review: Review | None, reviews: int,
                  restored_at: datetime.datetime | None = None) -> str:
    """The DiagnosticReport status a receiving system acts on. ``restored_at``: when a withdrawal was last undone."""
    if scan.is_withdrawn:
        return "entered-in-error"
    if review is not None:
        # A reading given before a withdrawal was taken back as entered in error: standing again, it replaces that.
        corrects = reviews > 1 or (restored_at is not None and review.reviewed_at < restored_at)
        return "amended" if corrects else "final"
    if prediction is None or prediction.status in (Prediction.Status.QUEUED, Prediction.Status.RUNNING):
        return "registered"
    if prediction.status == Prediction.Status.DONE:
        return "preliminary"
    return "cancelled"  # the diagnosis failed and nobody has read the slice yet


class _Bundle:
    def __init__(self, base: str) -> None:
        self.base = base
        self.entries: list[dict[str, Any]] = []

    def add(self, key: str, resource: dict[str, Any]) -> dict[str, str]:
        """Add the resource; answer a reference to it. Full URLs are stable names of this deployment's records."""
        full_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, self.base + key)}"
        self.entries.append({"fullUrl": full_url, "resource": resource})
        return {"reference": full_url}


def _ai_observation(prediction: Prediction, status: str, patient: dict, device: dict) -> dict[str, Any]:
    verdict = selectors.prediction_uncertainty(prediction)
    notes = [NOTICE]
    tested = selectors.label_reliability_text(model_version=prediction.model_version, label=prediction.label)
    if tested:
        notes.insert(0, f"In testing, {tested}.")
    if verdict.needs_review:
        notes.insert(0, f"Needs review. {verdict.reason}")
    return {
        "resourceType": "Observation",
        "status": status,
        "category": [_IMAGING],
        "code": {"text": "AI classification of the kidney CT slice"},
        "subject": patient,
        "issued": _when(prediction.finished_at),
        "device": device,
        "valueCodeableConcept": _class(prediction.label),
        "component": [
            {"code": {"text": f"Probability of {name}"},
             "valueQuantity": {"value": round(float(value), 4), "unit": "probability",
                               "system": "http://unitsofmeasure.org", "code": "1"}}
            for name, value in sorted(prediction.probabilities.items(), key=lambda item: -item[1])
        ],
        "note": [{"text": text} for text in notes],
    }


def review_relation(review: Review) -> str:
    """How a clinician's reading stands to the AI's, in words, as the exports note it."""
    if review.agrees_with_ai is None:
        return "Read without an AI result."
    return f"{'Confirms' if review.agrees_with_ai else 'Corrects'} the AI result ({review.prediction.label})."


def _review_observation(review: Review, status: str, patient: dict, ai: dict | None) -> dict[str, Any]:
    how = review_relation(review)
    resource = {
        "resourceType": "Observation",
        "status": status,
        "category": [_IMAGING],
        "code": {"text": "Clinician's reading of the kidney CT slice"},
        "subject": patient,
        "issued": _when(review.reviewed_at),
        "performer": [_person(review.reviewed_by)],
        "valueCodeableConcept": _class(review.label),
        "note": [{"text": how}] + ([{"text": review.comment}] if review.comment else []),
    }
    if ai is not None:
        resource["derivedFrom"] = [ai]
    return resource


def scan_fhir_bundle(*, scan: Scan, base_url: str) -> dict[str, Any]:
    """The scan's result as a FHIR R4 ``collection`` Bundle, DiagnosticReport first. ``base_url`` is the
    site's address (``https://host``): the bundle links the PDF report and the image there."""
    base_url = base_url.rstrip("/")
    patient_record = scan.patient
    prediction = scan.latest_prediction
    review = scan.current_review
    restored_at = selectors.scan_restored_at(scan=scan)
    status = report_status(scan, prediction, review, len(scan.reviews.all()), restored_at)
    withdrawn = status == "entered-in-error"
    bundle = _Bundle(base_url)

    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "identifier": [_report_identifier(scan.pk, base_url)],
        "status": status,
        "category": [_RADIOLOGY],
        "code": REPORT_CODE,
    }
    report_reference = bundle.add(f"/scans/{scan.pk}", report)  # first: filled in below
    patient = bundle.add(f"/patients/{patient_record.pk}", {
        "resourceType": "Patient",
        # The MRNs of records merged into this one are the person's retired identifiers: a receiving system
        # that filed earlier results under one of them matches this patient by it.
        "identifier": [{"use": "usual", "type": _MRN_TYPE, "system": mrn_system(patient_record),
                        "value": patient_record.mrn}] + [
            {"use": "old", "type": _MRN_TYPE, "system": mrn_system(patient_record), "value": mrn}
            for mrn in selectors.patient_former_mrns(patient=patient_record)],
        "name": [{"text": patient_record.name}],
        "gender": _GENDER.get(patient_record.sex, "unknown"),
        "birthDate": patient_record.birth_date.isoformat(),
    })
    report["subject"] = patient
    media = bundle.add(f"/scans/{scan.pk}/image", {
        "resourceType": "Media",
        **({"identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{scan.dicom_instance_uid}"}]}
           if scan.dicom_instance_uid else {}),
        "status": "entered-in-error" if withdrawn else "completed",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/media-type", "code": "image",
                             "display": "Image"}]},
        "subject": patient,
        "createdDateTime": _when(scan.uploaded_at),
        "width": scan.width,
        "height": scan.height,
        "content": {"contentType": f"image/{scan.format.lower()}",
                    "url": base_url + reverse("api:scan-image", kwargs={"pk": scan.pk}),
                    "title": scan.original_filename or f"scan-{scan.pk}"},
    })
    report["media"] = [{"comment": "The CT slice as uploaded", "link": media}]
    if scan.dicom_study_uid:
        # The study in the hospital's archive, by its UID: the receiving system links it to the ImagingStudy it
        # holds (kidneyweb keeps no study of its own, so the reference is logical).
        report["imagingStudy"] = [{"identifier": {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{scan.dicom_study_uid}"},
                                   "display": "The CT study this slice came from"}]
    if scan.dicom_accession_number:
        # The imaging order the study was made for, by its accession number, as the RIS and the EHR know it.
        report["basedOn"] = [{"type": "ServiceRequest", "display": "The imaging order of the CT study",
                              "identifier": {"type": _ACCESSION_TYPE, "system": accession_system(patient_record),
                                             "value": scan.dicom_accession_number}}]

    results: list[dict[str, str]] = []
    ai = None
    if prediction is not None and prediction.status == Prediction.Status.DONE:
        version = prediction.model_version
        device = bundle.add(f"/model-versions/{version.pk}", {
            "resourceType": "Device",
            "deviceName": [{"name": version.name, "type": "model-name"}],
            "version": [{"value": version.name}],
            "type": {"text": "Machine-learning classifier of kidney CT slices (decision support)"},
            "note": [{"text": f"SHA-256 of the model file: {version.sha256}"}],
        })
        ai = bundle.add(f"/predictions/{prediction.pk}", _ai_observation(
            prediction, "entered-in-error" if withdrawn else "preliminary", patient, device))
        results.append(ai)
    if review is not None:
        review_status = status  # entered-in-error, final or amended, as the report
        judged = ai if prediction is not None and review.prediction_id == prediction.pk else None
        results.append(bundle.add(f"/reviews/{review.pk}", _review_observation(review, review_status, patient, judged)))
        report["resultsInterpreter"] = [_person(review.reviewed_by)]
    if results:
        report["result"] = results
    issued = max((t for t in (prediction and prediction.finished_at, review and review.reviewed_at, restored_at)
                  if t), default=None)
    if issued:
        report["issued"] = _when(issued)
    report["conclusion"], label = report_conclusion(scan, prediction, review)
    if label:
        report["conclusionCode"] = [_class(label)]
    report["presentedForm"] = [{"contentType": "application/pdf", "title": f"Scan {scan.pk} report",
                                "url": base_url + reverse("api:scan-report", kwargs={"pk": scan.pk})}]
    if scan.refiled_from_id is not None:
        bundle.add(f"/scans/{scan.pk}/provenance", _refiling_provenance(scan, report_reference, base_url))
    return {"resourceType": "Bundle", "type": "collection", "entry": bundle.entries}


def _refiling_provenance(scan: Scan, report: dict[str, str], base_url: str) -> dict[str, Any]:
    """Where a refiled slice's report came from: the report of the scan it was first filed as, for another patient.
    A receiving system that filed that one (and then saw it entered in error) learns which report stands for the
    slice now. The earlier report is named by its identifier, as the receiving system knows it, and nothing of the
    other patient is said."""
    source = scan.refiled_from
    withdrawn = source.is_withdrawn
    return {
        "resourceType": "Provenance",
        "target": [report],
        "recorded": _when(scan.uploaded_at),
        "activity": {"text": "Filed for the right patient: the slice was uploaded for another patient first"},
        "agent": [{"who": _person(scan.uploaded_by)}],
        "entity": [{
            # Revised while the first filing stays entered in error; only its source once that one was restored.
            "role": "revision" if withdrawn else "source",
            "what": {"type": "DiagnosticReport",
                     "identifier": _report_identifier(source.pk, base_url),
                     "display": f"Scan {source.pk}, " + ("withdrawn as entered in error" if withdrawn
                                                         else "withdrawn and restored since")},
        }],
    }


def report_conclusion(scan: Scan, prediction: Prediction | None, review: Review | None) -> tuple[str, str | None]:
    """The report's conclusion in words, and the class it concludes (none while nobody can say)."""
    if scan.is_withdrawn:
        return f"Withdrawn as entered in error: {scan.withdrawal_reason}. Disregard this report.", None
    if review is not None:
        return f"Read by a clinician as {review.label}.", review.label
    if prediction is None or prediction.status in (Prediction.Status.QUEUED, Prediction.Status.RUNNING):
        return "The AI result is not ready yet.", None
    if prediction.status != Prediction.Status.DONE:
        return f"The AI diagnosis failed ({prediction.failure_reason}); a clinician must read the slice.", None
    verdict = selectors.prediction_uncertainty(prediction)
    confidence = f"{prediction.confidence:.0%}" if prediction.confidence is not None else "unknown"
    text = f"AI result, not yet reviewed by a clinician: {prediction.label} (probability {confidence})."
    if verdict.needs_review:
        text += f" Needs review. {verdict.reason}"
    return text, prediction.label
