"""A scan's AI result as a DICOM Secondary Capture, for the hospital's archive (PACS) to store beside the study the
slice came from: the slice with the heat map, and the result written above it, under the patient's identity as
kept here. A radiologist's viewer then shows the AI's reading next to the scanner's images, where they read.

Views only send what ``scan_result_capture`` builds. Its UIDs are made from what the capture shows (study, slice,
model, result, the clinician's review), so the same capture fetched again is the same instance, which an archive
stores once, and a review makes a new one.
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

from django.utils import timezone
from PIL import Image, ImageDraw, ImageFont

from . import selectors
from .dicom_uids import capture_uids
from .models import Patient, Prediction, Review, Scan
from .reports import slice_with_heatmap_image

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
# High, so that a viewer lists the AI's series after the scanner's own.
SERIES_NUMBER = 9901
MIN_WIDTH_PX = 512  # the text must stay legible above a small slice
NOTICE = "Decision support, not a diagnosis: confirm against the full study."
_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


class NotExportable(Exception):
    """The scan has no result a capture could show, or no study to put it in; the message says which."""


def current_review(scan: Scan, prediction: Prediction | None) -> Review | None:
    """The clinician's reading a capture of ``prediction`` shows: the scan's current review, when it judged that
    result (a review of an earlier result does not speak for a newer one)."""
    review = scan.current_review
    return review if prediction is not None and review is not None and review.prediction_id == prediction.pk else None


def exportable_result(*, scan: Scan, prediction: Prediction | None,
                      review: Review | None) -> tuple[Prediction, Review | None]:
    """The result (and review) an export of the scan states, as the capture and the structured report take them:
    ``prediction`` with ``review``, or else the newest result with its current review. Raises NotExportable for a
    withdrawn scan, a slice that came without a DICOM study (a PNG or JPEG upload), or one without a finished
    result."""
    if scan.is_withdrawn:
        raise NotExportable("The scan was withdrawn as entered in error: its result is not for the archive.")
    if not scan.dicom_study_uid:
        raise NotExportable("The slice came without a DICOM study (a PNG or JPEG upload), so there is no study in "
                            "the archive to put its result in.")
    if prediction is None:
        prediction = scan.latest_prediction
        review = current_review(scan, prediction)
    if prediction is None or prediction.status != Prediction.Status.DONE:
        state = "failed" if prediction is not None and prediction.status == Prediction.Status.FAILED else "not finished"
        raise NotExportable(f"The scan's diagnosis is {state}: there is no AI result to send to the archive.")
    if review is not None and review.prediction_id != prediction.pk:
        raise ValueError(f"Review {review.pk} judged another result than prediction {prediction.pk}.")
    return prediction, review


def scan_result_capture(*, scan: Scan, prediction: Prediction | None = None, review: Review | None = None) -> bytes:
    """The DICOM Part 10 file of the scan's AI result ``prediction`` with the clinician's ``review`` of it (None: the
    AI result alone). Without ``prediction``: the newest result with its current review. Raises NotExportable for a
    withdrawn scan, a slice that came without a DICOM study (a PNG or JPEG upload), or one without a finished
    result."""
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    prediction, review = exportable_result(scan=scan, prediction=prediction, review=review)
    version = prediction.model_version
    series_uid, instance_uid = capture_uids(scan, prediction, review)
    pixels = _captured(scan, prediction, review)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SECONDARY_CAPTURE, instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = "KIDNEYWEB"
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: patients' names are not all Latin
    dataset.ImageType = ["DERIVED", "SECONDARY"]
    dataset.SOPClassUID, dataset.SOPInstanceUID = SECONDARY_CAPTURE, instance_uid
    finished = content_time(prediction, review)
    filed_in_study(dataset, scan)
    dataset.ContentDate, dataset.ContentTime = finished.strftime("%Y%m%d"), finished.strftime("%H%M%S")
    dataset.Modality = "OT"
    dataset.ConversionType = "WSD"  # made on a workstation
    dataset.Manufacturer = "kidneyweb"
    dataset.InstitutionName = dicom_text(scan.patient.organization.name)
    dataset.SeriesDescription = dicom_text(f"AI result ({version.name}), decision support")
    dataset.SecondaryCaptureDeviceManufacturer = "kidneyweb"
    dataset.SecondaryCaptureDeviceManufacturerModelName = dicom_text(version.name)
    dataset.SeriesInstanceUID = series_uid
    dataset.SeriesNumber, dataset.InstanceNumber = SERIES_NUMBER, scan.pk
    dataset.Laterality = ""  # an axial slice shows both kidneys
    dataset.PatientOrientation = ""
    dataset.BurnedInAnnotation = "YES"
    if scan.dicom_sop_class_uid and scan.dicom_instance_uid:
        # The slice it was made from, so that a viewer can go from the result to the scanner's image.
        origin = Dataset()
        origin.ReferencedSOPClassUID = scan.dicom_sop_class_uid
        origin.ReferencedSOPInstanceUID = scan.dicom_instance_uid
        dataset.SourceImageSequence = [origin]
    dataset.DerivationDescription = (f"AI result of kidneyweb with its Grad-CAM heat map, from the slice "
                                     f"{scan.dicom_instance_uid or '(no instance UID)'}")[:1024]
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation, dataset.PlanarConfiguration = 3, "RGB", 0
    dataset.Rows, dataset.Columns = pixels.height, pixels.width
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    dataset.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def content_time(prediction: Prediction, review: Review | None) -> datetime.datetime:
    """When an export's content was made: the clinician's reading, or else the AI's (local time)."""
    return timezone.localtime(review.reviewed_at if review else prediction.finished_at or timezone.now())


def filed_in_study(dataset, scan: Scan) -> None:
    """Write into ``dataset`` where a capture or report of the scan files: the slice's study, as the scanner's
    header said (date, time and description empty, as type 2 allows, for slices stored before they were kept), under
    the patient as kept here (``capture_patient``)."""
    dataset.StudyInstanceUID, dataset.StudyID = scan.dicom_study_uid, ""
    dataset.StudyDate = scan.dicom_study_date.strftime("%Y%m%d") if scan.dicom_study_date else ""
    dataset.StudyTime = scan.dicom_study_time.strftime("%H%M%S") if scan.dicom_study_time else ""
    if scan.dicom_study_description:
        dataset.StudyDescription = dicom_text(scan.dicom_study_description)
    dataset.AccessionNumber, dataset.ReferringPhysicianName = scan.dicom_accession_number, ""
    dataset.PatientName, dataset.PatientID, dataset.PatientBirthDate, dataset.PatientSex = capture_patient(scan)


def capture_patient(scan: Scan, patient: Patient | None = None) -> tuple[str, str, str, str]:
    """PatientName, PatientID, PatientBirthDate and PatientSex as a capture of the scan writes them, for ``patient``
    (by default the scan's): when they change, what the archive holds names the patient as they no longer are."""
    patient = patient or scan.patient
    # DICOM knows M, F and O; an unknown sex is left empty (type 2), not written as the record's "U".
    return (dicom_text(patient.name), dicom_text(archive_patient_id(scan, patient)),
            patient.birth_date.strftime("%Y%m%d"), "" if patient.sex == Patient.Sex.UNKNOWN else patient.sex)


def archive_patient_id(scan: Scan, patient: Patient | None = None) -> str:
    """The patient ID to file the capture under: the one the slice's own header gave, where it names the patient's
    MRN in the archive's spelling (leading zeros, case), so that the archive finds the study under the patient it
    holds it for, rather than splitting it; otherwise the MRN."""
    from .services.scans import same_patient_id

    mrn = (patient or scan.patient).mrn
    return scan.dicom_patient_id.strip() if scan.dicom_patient_id and same_patient_id(scan.dicom_patient_id, mrn) else mrn


def capture_lines(prediction: Prediction, *, heat_map: bool, review: Review | None = None) -> list[str]:
    """What the capture's band says: the result (marked for review as the worklist marks it, unless a clinician
    reviewed it), the clinician's reading, the model and when, and that it is decision support. No patient detail:
    the header carries it."""
    verdict = selectors.prediction_uncertainty(prediction)
    result = f"AI: {prediction.label} {prediction.confidence or 0:.0%}"
    if prediction.out_of_scope:
        result = "AI: out of scope (unlike the slices it was trained on), needs review"
    elif verdict.needs_review:
        result += f", uncertain (under {verdict.threshold:.0%})" + ("" if review else ", needs review")
    when = timezone.localtime(prediction.finished_at or timezone.now()).strftime("%Y-%m-%d %H:%M")
    lines = [result]
    if review is not None:
        reader = review.reviewed_by.get_full_name() or review.reviewed_by.get_username()
        judged = "agrees with the AI" if review.agrees_with_ai else "corrects the AI"
        reviewed = timezone.localtime(review.reviewed_at).strftime("%Y-%m-%d %H:%M")
        lines.append(f"Clinician: {review.label}, {judged} ({reader}, {reviewed})")
    return [*lines, f"{prediction.model_version.name}, {when}" + (", heat map: where it looked" if heat_map else ""),
            NOTICE]


def _wrapped(line: str, font, width: float) -> list[str]:
    """The line broken at spaces into parts that fit ``width`` pixels in ``font``."""
    parts: list[str] = []
    for word in line.split(" "):
        if parts and font.getlength(f"{parts[-1]} {word}") <= width:
            parts[-1] = f"{parts[-1]} {word}"
        else:
            parts.append(word)
    return parts


def dicom_text(value: str, limit: int = 64) -> str:
    # A backslash separates values in DICOM, and "^" and "=" split a person's name into parts; none of them is
    # meant here.
    return "".join(" " if c in "\\^=" or not c.isprintable() else c for c in value).strip()[:limit]


def _captured(scan: Scan, prediction: Prediction, review: Review | None) -> Image.Image:
    """The slice with its heat map, widened to stay legible, under a black band with ``capture_lines``."""
    image, drew = slice_with_heatmap_image(scan, prediction)
    if image.width < MIN_WIDTH_PX:
        image = image.resize((MIN_WIDTH_PX, round(image.height * MIN_WIDTH_PX / image.width)), Image.BILINEAR)
    size = max(14, image.width // 32)
    font = ImageFont.truetype(str(_FONT), size) if _FONT.is_file() else ImageFont.load_default(size)
    lines = [part for line in capture_lines(prediction, heat_map=drew, review=review)
             for part in _wrapped(line, font, image.width - size)]
    band = round(size * 1.4) * len(lines) + size
    canvas = Image.new("RGB", (image.width, image.height + band), "black")
    canvas.paste(image, (0, band))
    draw = ImageDraw.Draw(canvas)
    for row, line in enumerate(lines):
        draw.text((size // 2, size // 2 + row * round(size * 1.4)), line, fill="white", font=font)
    return canvas
