"""DICOM CT slices turned into the 8-bit grey images the model was trained on.

The developer set is PACS exports: Hounsfield units already windowed into 0-255. A DICOM slice
holds raw stored values, so it must be windowed the same way before the model sees it. The slice's
own window (what its reader saw on the workstation) wins; a CT slice without one gets the abdominal
soft-tissue window the kidney images were read in.

Pixel data may be uncompressed or compressed as archives store it (JPEG lossless and baseline,
JPEG-LS, JPEG 2000, RLE): pydicom decodes them with the pylibjpeg and pyjpegls plugins.
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass

import numpy as np

# Abdominal soft tissue, in Hounsfield units: centre 40, width 400.
DEFAULT_CT_WINDOW = (40.0, 400.0)


class DicomError(ValueError):
    """A DICOM file that holds no single slice this code can read; the message says why, for people."""


@dataclass(frozen=True)
class DicomSlice:
    pixels: np.ndarray  # uint8, (H, W, 1) or (H, W, 3)
    window: tuple[float, float] | None  # (centre, width) applied, in the modality's units; None for colour


@dataclass(frozen=True)
class DicomHeader:
    """Whose slice the header says this is, and how it was taken: for checking an upload, never stored."""

    patient_id: str  # "" when the header has none (an anonymised export)
    modality: str  # upper case, e.g. "CT"; "" when absent
    # Which instance this is, for answering the archive that sent it; "" when absent.
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    accession_number: str = ""  # the order the study was made for, as the hospital's RIS numbers it
    # When the study was made and what it is, as a radiologist knows it; None or "" when absent or unreadable.
    study_date: datetime.date | None = None
    study_time: datetime.time | None = None
    study_description: str = ""


def _date_or_time(value: object, kind: type) -> datetime.date | datetime.time | None:
    """A DA or TM value as a date or time; None when absent or not one (a header's free text is no reason to
    refuse a slice)."""
    if not value:
        return None
    try:
        parsed = kind(str(value).strip())
    except (ValueError, TypeError, OverflowError):
        return None
    # Plain values, not pydicom's subclasses that carry the original text.
    if isinstance(parsed, datetime.date):
        return datetime.date(parsed.year, parsed.month, parsed.day)
    if isinstance(parsed, datetime.time):
        return datetime.time(parsed.hour, parsed.minute, parsed.second, parsed.microsecond)
    return None


def read_header(data: bytes) -> DicomHeader:
    """The header's patient ID and modality, without decoding pixels; raise DicomError if unreadable."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.valuerep import DA, TM

    try:
        dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise DicomError(f"it is not a readable DICOM file ({exc})") from None
    return DicomHeader(patient_id=str(dataset.get("PatientID", "") or "").strip(),
                       modality=str(dataset.get("Modality", "") or "").strip().upper(),
                       sop_class_uid=str(dataset.get("SOPClassUID", "") or "").strip(),
                       sop_instance_uid=str(dataset.get("SOPInstanceUID", "") or "").strip(),
                       study_instance_uid=str(dataset.get("StudyInstanceUID", "") or "").strip(),
                       series_instance_uid=str(dataset.get("SeriesInstanceUID", "") or "").strip(),
                       accession_number=str(dataset.get("AccessionNumber", "") or "").strip(),
                       study_date=_date_or_time(dataset.get("StudyDate"), DA),
                       study_time=_date_or_time(dataset.get("StudyTime"), TM),
                       study_description=str(dataset.get("StudyDescription", "") or "").strip())


def is_dicom(data: bytes) -> bool:
    """A DICOM Part 10 file: a 128-byte preamble, then the letters DICM."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def _window_of(dataset) -> tuple[float, float] | None:
    from pydicom.multival import MultiValue

    def first(value) -> float:
        # Window tags may hold several values (alternative views); the first is the default one.
        return float(value[0] if isinstance(value, MultiValue) else value)

    centre, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if centre is not None and width is not None:
        try:
            window = (first(centre), first(width))
        except (TypeError, ValueError, IndexError):
            window = None
        if window is not None and window[1] >= 1:
            return window
    if str(dataset.get("Modality", "")).upper() == "CT":
        return DEFAULT_CT_WINDOW
    return None


def _number(dataset, keyword: str, default: float) -> float:
    """A header value the standard allows once. Several values, or text, mean a malformed header:
    refuse the file rather than guess which value the scanner meant."""
    value = dataset.get(keyword, default)
    try:
        return float(value or default)
    except (TypeError, ValueError):
        raise DicomError(f"its {keyword} ({value}) is not a single number") from None


def _can_decode(syntax) -> bool:
    """Whether an installed plugin decodes this transfer syntax (JPEG, JPEG-LS, JPEG 2000 and RLE do;
    video syntaxes do not)."""
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(syntax).is_available)
    except NotImplementedError:
        return False


def read_dicom(data: bytes, *, max_pixels: int | None = None) -> DicomSlice:
    """Decode one slice; raise DicomError for several frames, too many pixels or undecodable pixel data."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise DicomError(f"it is not a readable DICOM file ({exc})") from None
    if "PixelData" not in dataset or "Rows" not in dataset or "Columns" not in dataset:
        raise DicomError("it holds no image (no pixel data)")
    rows, columns = int(_number(dataset, "Rows", 0)), int(_number(dataset, "Columns", 0))
    if rows <= 0 or columns <= 0:
        raise DicomError("its image has no pixels")
    if max_pixels is not None and rows * columns > max_pixels:
        raise DicomError(f"its image is {columns}×{rows} pixels; the limit is {max_pixels:,} pixels")
    frames = int(_number(dataset, "NumberOfFrames", 1))
    if frames > 1:
        raise DicomError(f"it holds {frames} frames; upload one slice at a time")
    try:
        pixels = dataset.pixel_array
    except Exception as exc:  # pydicom signals missing decoders and broken data with many types
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and getattr(syntax, "is_compressed", False) and not _can_decode(syntax):
            raise DicomError(f"its pixels are compressed as {syntax.name}, which cannot be decoded here; "
                             "export the slice uncompressed") from None
        raise DicomError(f"its pixel data is incomplete or corrupt ({exc})") from None

    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(_number(dataset, "SamplesPerPixel", 1))
    colour = pixels.ndim == 3 and samples == 3 and pixels.shape[-1] == 3
    if not (pixels.ndim == 2 or colour):
        # A header that says one frame over pixel data holding more, or samples the header does not describe.
        raise DicomError(f"its pixel data does not match its header (an array of shape {tuple(pixels.shape)} for "
                         f"{frames} frame(s) of {samples} sample(s) per pixel); export the slice again")
    if colour:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            try:
                pixels = convert_color_space(pixels, photometric, "RGB")
            except Exception as exc:  # pydicom converts only some YBR variants (NotImplementedError, ValueError)
                raise DicomError(f"its colour space {photometric} cannot be converted here ({exc}); "
                                 "export the slice as greyscale (MONOCHROME2)") from None
        return DicomSlice(pixels=_to_uint8(pixels), window=None)

    slope, intercept = _number(dataset, "RescaleSlope", 1), _number(dataset, "RescaleIntercept", 0)
    values = pixels.astype(np.float64) * slope + intercept
    window = _window_of(dataset)
    if window is None and pixels.dtype == np.uint8:
        # An 8-bit capture of a slice already windowed on a workstation: keep its grey levels as they are.
        low, high = intercept, 255 * slope + intercept
    elif window is None:
        low, high = float(values.min()), float(values.max())
    else:
        low, high = window[0] - window[1] / 2, window[0] + window[1] / 2
    scaled = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
    if photometric == "MONOCHROME1":
        scaled = 1.0 - scaled  # MONOCHROME1 shows low values white
    grey = np.round(scaled * 255).astype(np.uint8)[..., None]
    return DicomSlice(pixels=np.ascontiguousarray(grey), window=window)


def dicom_as_png(data: bytes, *, max_pixels: int | None = None) -> bytes:
    """The windowed slice as PNG bytes: what an upload stores and what training reads.

    Only the pixels are kept; the header, with the patient's name and ID, is not.
    """
    from PIL import Image

    pixels = read_dicom(data, max_pixels=max_pixels).pixels
    out = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(out, format="PNG")
    return out.getvalue()


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    top = float(pixels.max()) or 1.0
    return np.ascontiguousarray(np.round(pixels.astype(np.float64) / top * 255).astype(np.uint8))
