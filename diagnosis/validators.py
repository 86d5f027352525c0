"""Checks on uploaded scan images. The bytes decide what a file is, never its name or Content-Type.

A DICOM slice is turned into a windowed PNG first and stored as that (see diagnosis.ml.dicom_as_png), and a
16-bit grey PNG into an 8-bit one."""

from __future__ import annotations

import datetime
import io
import warnings
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, ImageFile, UnidentifiedImageError

from . import ml

ACCEPTED_FORMATS = ("PNG", "JPEG")
# DICOM modalities whose slices may be kidney CT: CT itself, and a workstation's capture of one
# (secondary capture, other). An MR, ultrasound or radiograph is refused rather than read as CT.
CT_MODALITIES = frozenset({"CT", "SC", "OT", ""})


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    width: int
    height: int
    dicom_patient_id: str = ""  # the patient ID a DICOM header names, to check against the patient chosen
    # Which study, series and instance of the archive a DICOM slice is, so that a result can be linked back to it.
    dicom_study_uid: str = ""
    dicom_series_uid: str = ""
    dicom_instance_uid: str = ""
    dicom_accession_number: str = ""
    dicom_sop_class_uid: str = ""
    # When the study was made and what it is: how a radiologist tells a patient's studies apart.
    dicom_study_date: datetime.date | None = None
    dicom_study_time: datetime.time | None = None
    dicom_study_description: str = ""


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _read_limited(file: IO[bytes], limit: int) -> bytes:
    if hasattr(file, "seek"):
        file.seek(0)
    # One byte past the limit is enough to know the file is too large, without reading all of it.
    data = file.read(limit + 1)
    if len(data) > limit:
        raise ValidationError(
            f"The file is larger than the {_megabytes(limit)} limit.",
            code="file_too_large",
        )
    return data


def validate_scan_image(file: IO[bytes]) -> CheckedImage:
    """Return the image's bytes, format and size, or raise ValidationError with a message for a person.

    Order matters: size first (cheap), then the header (format and pixel count, before any pixel is
    decoded, so a decompression bomb costs nothing), then a full decode to catch truncated or corrupt
    files that a header alone does not reveal.
    """
    max_bytes: int = settings.KIDNEYWEB_MAX_UPLOAD_BYTES
    max_pixels: int = settings.KIDNEYWEB_MAX_IMAGE_PIXELS

    declared_size = getattr(file, "size", None)
    if declared_size is not None and declared_size > max_bytes:
        raise ValidationError(
            f"The file is {_megabytes(declared_size)}; the limit is {_megabytes(max_bytes)}.",
            code="file_too_large",
        )
    data = _read_limited(file, max_bytes)
    if not data:
        raise ValidationError("The file is empty.", code="empty_file")
    dicom: dict[str, object] = {}
    if ml.is_dicom(data):
        try:
            header = ml.dicom_header(data)
            if header.modality not in CT_MODALITIES:
                raise ValueError(f"it is not a CT slice (modality {header.modality}); only CT slices can be diagnosed")
            dicom = {"dicom_patient_id": header.patient_id, "dicom_study_uid": header.study_instance_uid,
                     "dicom_series_uid": header.series_instance_uid, "dicom_instance_uid": header.sop_instance_uid,
                     "dicom_accession_number": header.accession_number, "dicom_sop_class_uid": header.sop_class_uid,
                     "dicom_study_date": header.study_date, "dicom_study_time": header.study_time,
                     "dicom_study_description": header.study_description}
            # From here on the slice is a PNG like any other upload, checked by the same rules.
            data = ml.dicom_as_png(data, max_pixels=max_pixels)
        except ValueError as exc:
            raise ValidationError(f"The DICOM file cannot be used: {exc}.", code="unsupported_dicom") from None

    not_an_image = ValidationError(
        "The file is not a PNG, JPEG or DICOM image (its content was checked, not its name).",
        code="unsupported_format",
    )
    too_many_pixels = "The image is {w}×{h} pixels ({n:,}); the limit is {limit:,} pixels."
    try:
        with warnings.catch_warnings():
            # Our own pixel limit is lower than Pillow's bomb warning threshold and is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as header:
                image_format = header.format
                width, height = header.size
    except Image.DecompressionBombError:
        raise ValidationError(
            f"The image declares more pixels than the limit of {max_pixels:,}.", code="too_many_pixels"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise not_an_image from None
    if image_format not in ACCEPTED_FORMATS:
        raise not_an_image
    if width <= 0 or height <= 0:
        raise ValidationError("The image has no pixels.", code="corrupt_image")
    if width * height > max_pixels:
        raise ValidationError(
            too_many_pixels.format(w=width, h=height, n=width * height, limit=max_pixels),
            code="too_many_pixels",
        )

    # A truncated file must fail here rather than be padded with grey by Pillow.
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        # verify() checks PNG chunk CRCs that load() ignores; it needs a fresh file afterwards.
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            image.verify()
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            image.load()
    except Exception:
        # Pillow signals broken data with OSError, SyntaxError, ValueError, struct.error, EOFError...
        raise ValidationError(
            "The image is truncated or corrupt and could not be decoded.", code="corrupt_image"
        ) from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous

    if image_format == "PNG":
        # Stored as the model and the browser read it, as a DICOM slice is.
        data = ml.high_bit_depth_as_png(data) or data
    return CheckedImage(data=data, format=image_format, width=width, height=height, **dicom)


def date_range_error(*, start: datetime.date | None, end: datetime.date | None) -> str | None:
    """Why a from–to filter cannot match anything, or None. Without it a reversed range answers with an
    empty list that reads as "nothing to review"."""
    if start and end and start > end:
        return f"The end date {end.isoformat()} is before the start date {start.isoformat()}."
    return None
