"""A scan's result as an HL7 v2.5.1 ORU^R01 message, the form most hospitals' interface engines and record systems
still take results in: the patient (MRN, name, birth date, sex), the imaging order by its accession number, and the
result as coded observations: the AI's class (SNOMED CT, as the FHIR export codes it), its probability for each
class, the clinician's reading, the conclusion in words, the study's UID and a link to the PDF report.

It follows the scan's state as the FHIR export does: preliminary (P) for an AI result nobody has read, final (F)
after a review, corrected (C) after a second one, and, once the slice is withdrawn as entered in error, every
observation as wrong (W), so that the receiving system takes back what it filed. The message is built from what is
stored, and its control id (MSH-10) is a digest of its content: the same state sent twice is the same message, which
a receiving system recognises as a duplicate, and any change makes a new one.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable

from django.urls import reverse
from django.utils import timezone

from . import selectors
from .fhir import SNOMED_CLASSES, report_conclusion, report_status, review_relation
from .models import Patient, Prediction, Scan
from .reports import NOTICE

HL7_MEDIA_TYPE = "x-application/hl7-v2+er7"  # the name interface engines (HAPI, Mirth) give ER7-encoded v2
VERSION = "2.5.1"
APPLICATION = "KIDNEYWEB"
LOCAL = "99KIDNEYWEB"  # HL7's "99zzz" form of a local coding system: codes kidneyweb defines
SEGMENT_END = "\r"
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}
# DiagnosticReport status (FHIR export) as the order's result status (OBR-25) and its observations' (OBX-11): while
# the diagnosis runs, results are pending (I); a failed one that nobody has read cannot be obtained (X).
_STATUS = {
    "registered": ("I", "I"), "preliminary": ("P", "P"), "final": ("F", "F"), "amended": ("C", "C"),
    "cancelled": ("X", "X"), "entered-in-error": ("C", "W"),
}
_ORDER_STATUS = {"I": "IP", "X": "CA"}  # ORC-5; otherwise CM (completed)
INDETERMINATE = ("82334004", "Indeterminate", "SCT")
STUDY_UID = ("110180", "Study Instance UID", "DCM")
AI_CLASS = ("AI-CLASS", "AI classification of the kidney CT slice", LOCAL)
READING = ("READING", "Clinician's reading of the kidney CT slice", LOCAL)
CONCLUSION = ("CONCLUSION", "Conclusion", LOCAL)
REPORT = ("PDF-REPORT", "PDF report", LOCAL)
SERVICE = ("KIDNEY-CT-SLICE", "Kidney CT slice classification", LOCAL)


def escape(value: object) -> str:
    """``value`` as HL7 text: its delimiters escaped, and line breaks, which would end a segment, as spaces."""
    text = "".join(_ESCAPES.get(c, c) for c in str(value))
    return " ".join(text.split()) if any(c in text for c in "\r\n\t") else text


def _coded(code: str, meaning: str, system: str) -> str:
    return "^".join(escape(part) for part in (code, meaning, system))


def class_code(label: str) -> str:
    """A class as a CWE: its SNOMED CT concept, with kidneyweb's own code as the alternate (the exact class the model
    was trained on); a model's other class names get the local code only."""
    local = _coded(label[:20], label, LOCAL)  # CWE.1 holds at most 20 characters
    if label in SNOMED_CLASSES:
        code, meaning = SNOMED_CLASSES[label]
        return f"{_coded(code, meaning, 'SCT')}^{local}"
    return local


def _probability_code(label: str) -> tuple[str, str, str]:
    # CWE.1 holds at most 20 characters.
    return ("P-" + "".join(c for c in label.upper() if c.isalnum())[:18], f"Probability of {label}", LOCAL)


def _time(value: datetime.datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y%m%d%H%M%S%z") if value else ""


def _person(user) -> str:
    """A user as an XCN: user name^family^given."""
    return "^".join(escape(part) for part in (user.get_username(), user.last_name, user.first_name)).rstrip("^")


def _segment(name: str, *fields: str) -> str:
    return "|".join((name, *fields)).rstrip("|")


class _Observations:
    def __init__(self, status: str) -> None:
        self.status = status
        self.count = 0
        self.segments: list[str] = []

    def add(self, value_type: str, code: tuple[str, str, str], value: str, *, sub_id: str = "", units: str = "",
            observed: datetime.datetime | None = None, observer: str = "", equipment: str = "",
            notes: Iterable[str] = ()) -> None:
        self.count += 1
        self.segments.append(_segment(
            "OBX", str(self.count), value_type, _coded(*code), sub_id, value, units, "", "", "", "",
            self.status, "", "", _time(observed), "", observer, "", equipment, _time(observed)))
        self.segments.extend(_notes(notes))


def _notes(texts: Iterable[str]) -> list[str]:
    return [_segment("NTE", str(number), "L", escape(text))
            for number, text in enumerate((text for text in texts if text), start=1)]


def scan_result_message(*, scan: Scan, base_url: str = "", receiving_application: str = "",
                        receiving_facility: str = "") -> bytes:
    """The ORU^R01 message (ER7, UTF-8) of the scan's result as it stands: the newest AI result and the current
    review. ``base_url`` (``https://host``) adds a link to the PDF report; the receiving application and facility
    fill MSH-5 and MSH-6 for a system that routes by them."""
    patient: Patient = scan.patient
    prediction = scan.latest_prediction
    review = scan.current_review
    restored_at = selectors.scan_restored_at(scan=scan)
    state = report_status(scan, prediction, review, len(scan.reviews.all()), restored_at)
    result_status, observation_status = _STATUS[state]
    done = prediction is not None and prediction.status == Prediction.Status.DONE
    # A restoral is a change too: the message after a withdrawal's W must not read as older than it.
    changed = max((t for t in (prediction and prediction.finished_at, review and review.reviewed_at,
                               scan.withdrawn_at, restored_at, scan.uploaded_at) if t))
    organization = escape(patient.organization.slug)

    pid = _segment("PID", "1", "", f"{escape(patient.mrn)}^^^{organization}^MR", "", escape(patient.name), "",
                   patient.birth_date.strftime("%Y%m%d"), patient.sex)
    order = f"{scan.pk}^{APPLICATION}"
    orc = _segment("ORC", "RE", "", order, "", _ORDER_STATUS.get(result_status, "CM"))
    studied = (datetime.datetime.combine(scan.dicom_study_date, scan.dicom_study_time or datetime.time(),
                                         tzinfo=timezone.get_current_timezone())
               if scan.dicom_study_date else scan.uploaded_at)
    obr = _segment("OBR", "1", "", order, _coded(*SERVICE), "", "", _time(studied), "", "", "", "", "", "", "", "",
                   "", "", escape(scan.dicom_accession_number), "", "", "", _time(changed), "", "CT", result_status,
                   "", "", "", "", "", "", _person(review.reviewed_by).replace("^", "&") if review else "")
    order_notes = _notes([NOTICE])

    observations = _Observations(observation_status)
    conclusion, _ = report_conclusion(scan, prediction, review)
    observations.add("TX", CONCLUSION, escape(conclusion), observed=changed)
    if done:
        version = prediction.model_version
        equipment = f"{escape(version.name)}^{APPLICATION}"
        verdict = selectors.prediction_uncertainty(prediction)
        found = (_coded(*INDETERMINATE) if prediction.out_of_scope else class_code(prediction.label))
        observations.add("CWE", AI_CLASS, found, sub_id="1", observed=prediction.finished_at, equipment=equipment,
                         notes=[prediction.out_of_scope_reason if prediction.out_of_scope else "",
                                f"Needs review. {verdict.reason}" if verdict.needs_review else ""])
        for label, value in sorted(prediction.probabilities.items(), key=lambda item: -item[1]):
            observations.add("NM", _probability_code(label), f"{float(value):.4f}", sub_id="1",
                             units="1^no units^UCUM", observed=prediction.finished_at, equipment=equipment)
    if review is not None:
        observations.add("CWE", READING, class_code(review.label), sub_id="1", observed=review.reviewed_at,
                         observer=_person(review.reviewed_by), notes=[review_relation(review), review.comment])
    if scan.dicom_study_uid:
        observations.add("HD", STUDY_UID, escape(scan.dicom_study_uid), observed=changed)
    if base_url:
        link = base_url.rstrip("/") + reverse("api:scan-report", kwargs={"pk": scan.pk})
        observations.add("RP", REPORT, f"{escape(link)}^{APPLICATION}^AP^PDF", observed=changed)

    body = [pid, orc, obr, *order_notes, *observations.segments]
    control_id = hashlib.sha256(SEGMENT_END.join(body).encode()).hexdigest()[:20]
    msh = "|".join(("MSH", "^~\\&", APPLICATION, organization, escape(receiving_application),
                    escape(receiving_facility), _time(changed), "", "ORU^R01^ORU_R01", control_id, "P", VERSION,
                    "", "", "", "", "", "UNICODE UTF-8"))
    return (SEGMENT_END.join([msh, *body]) + SEGMENT_END).encode()


__all__ = ["HL7_MEDIA_TYPE", "class_code", "escape", "scan_result_message"]
