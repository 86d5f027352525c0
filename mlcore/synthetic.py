"""Small synthetic CT-like data sets for tests and demos (never a substitute for real slices)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("Cyst", "Normal", "Stone", "Tumor")


def synthetic_slice(label: str, rng: np.random.Generator, size: int = 64, patient: int = 0) -> np.ndarray:
    """A grey 'body' disc with a class-specific feature, so a tiny model can learn something."""
    yy, xx = np.mgrid[:size, :size]
    centre = size / 2 + patient  # each patient sits a little differently
    body = ((yy - centre) ** 2 + (xx - centre) ** 2) < (size * 0.4) ** 2
    image = np.where(body, 90.0, 10.0) + rng.normal(0, 6, (size, size))
    r = size // 8
    if label == "Cyst":
        image[(yy - size // 3) ** 2 + (xx - size // 3) ** 2 < r ** 2] = 40
    elif label == "Stone":
        image[(yy - size // 2) ** 2 + (xx - 2 * size // 3) ** 2 < (r // 2) ** 2] = 250
    elif label == "Tumor":
        image[(yy - 2 * size // 3) ** 2 + (xx - size // 2) ** 2 < (r * 1.5) ** 2] = 160
    return np.clip(image, 0, 255).astype(np.uint8)


def write_dataset(root: Path, series_per_class: int = 4, slices_per_series: int = 5, size: int = 64) -> Path:
    rng = np.random.default_rng(0)
    for label in CLASSES:
        folder = root / label
        folder.mkdir(parents=True)
        image_id = 1
        for patient in range(series_per_class):
            for _ in range(slices_per_series):
                Image.fromarray(synthetic_slice(label, rng, size, patient)).save(folder / f"{label}-{image_id}.jpg", quality=95)
                image_id += 1
            image_id += 10  # a gap in ids: the next series belongs to another patient
    return root


def dicom_bytes(stored: np.ndarray, *, slope: float = 1.0, intercept: float = -1024.0,
                window: tuple[float, float] | None = (40.0, 400.0), photometric: str = "MONOCHROME2",
                modality: str = "CT", transfer_syntax: str | None = None, patient_id: str | None = "MRN-000",
                study_uid: str | None = None, series_uid: str | None = None, accession_number: str = "",
                study_date: str = "", study_time: str = "", study_description: str = "") -> bytes:
    """A DICOM Part 10 slice holding ``stored`` values: 2-D (u)int8/16, or 3-D for several frames;
    for CT, HU = stored * slope + intercept, as a scanner writes them. ``patient_id`` None leaves the
    header without one, as an anonymised export. ``study_uid`` and ``series_uid`` are its study's and series' UIDs, new ones when not given.

    Uncompressed unless ``transfer_syntax`` names a lossless compression: JPEG Lossless (process 14,
    first-order prediction, as PACS archives commonly store CT), RLE, JPEG-LS or JPEG 2000 lossless.
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID, dataset.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = study_uid or generate_uid()
    dataset.SeriesInstanceUID = series_uid or generate_uid()
    if accession_number:
        dataset.AccessionNumber = accession_number
    for keyword, value in (("StudyDate", study_date), ("StudyTime", study_time), ("StudyDescription", study_description)):
        if value:
            setattr(dataset, keyword, value)
    dataset.Modality = modality
    # Identifiers as a scanner writes them: the web app must not keep them.
    dataset.PatientName = "Test^Patient"
    if patient_id is not None:
        dataset.PatientID = patient_id
    frames = stored if stored.ndim == 3 else stored[None]
    if stored.ndim == 3:
        dataset.NumberOfFrames = stored.shape[0]
    dataset.Rows, dataset.Columns = frames.shape[1:]
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, photometric
    bits = stored.dtype.itemsize * 8
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = bits, bits, bits - 1
    dataset.PixelRepresentation = 1 if stored.dtype.kind == "i" else 0
    dataset.RescaleSlope, dataset.RescaleIntercept = str(slope), str(intercept)
    if window is not None:
        dataset.WindowCenter, dataset.WindowWidth = str(window[0]), str(window[1])
    dataset.PixelData = np.ascontiguousarray(stored).tobytes()
    if transfer_syntax == pydicom.uid.JPEGLosslessSV1:
        # JPEG codes unsigned samples; signed CT values travel as their two's complement bits.
        unsigned = np.ascontiguousarray(frames).view(f"u{stored.dtype.itemsize}")
        dataset.PixelData = pydicom.encaps.encapsulate([lossless_jpeg(frame, bits) for frame in unsigned])
        dataset["PixelData"].VR = "OB"
        meta.TransferSyntaxUID = transfer_syntax
    elif transfer_syntax is not None:
        dataset.compress(transfer_syntax)
    out = io.BytesIO()
    pydicom.dcmwrite(out, dataset, enforce_file_format=True)
    return out.getvalue()


def lossless_jpeg(samples: np.ndarray, precision: int) -> bytes:
    """One grey frame as lossless JPEG (ITU T.81 process 14, predictor 1: the left neighbour).

    pydicom has no encoder for it, and it is how many archives store CT; the table is plain
    (every difference category a 5-bit code), which any decoder must read.
    """
    rows, columns = samples.shape
    values = samples.astype(np.int64)
    predicted = np.empty_like(values)
    predicted[0, 0] = 1 << (precision - 1)
    predicted[0, 1:] = values[0, :-1]
    predicted[1:, 0] = values[:-1, 0]
    predicted[1:, 1:] = values[1:, :-1]
    differences = (values - predicted) % 65536
    differences = np.where(differences >= 32768, differences - 65536, differences)

    bits: list[str] = []
    for difference in differences.ravel().tolist():
        category = int(abs(difference)).bit_length()
        bits.append(format(category, "05b"))
        if 0 < category < 16:
            extra = difference if difference > 0 else difference + (1 << category) - 1
            bits.append(format(extra, f"0{category}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    entropy = bytearray()
    for start in range(0, len(stream), 8):
        byte = int(stream[start:start + 8], 2)
        entropy.append(byte)
        if byte == 0xFF:
            entropy.append(0)  # byte stuffing: 0xFF in the data is followed by 0x00

    def segment(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body

    frame_header = bytes([precision]) + rows.to_bytes(2, "big") + columns.to_bytes(2, "big") + bytes([1, 1, 0x11, 0])
    counts = bytes([0, 0, 0, 0, 17] + [0] * 11)
    huffman = bytes([0x00]) + counts + bytes(range(17))
    scan_header = bytes([1, 1, 0x00, 1, 0, 0])  # one component, table 0, predictor 1, point transform 0
    return (b"\xff\xd8" + segment(0xC3, frame_header) + segment(0xC4, huffman) + segment(0xDA, scan_header)
            + bytes(entropy) + b"\xff\xd9")
