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
                modality: str = "CT") -> bytes:
    """A DICOM Part 10 slice (uncompressed) holding ``stored`` values: 2-D (u)int8/16, or 3-D for
    several frames; for CT, HU = stored * slope + intercept, as a scanner writes them."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID, dataset.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    dataset.Modality = modality
    # Identifiers as a scanner writes them: the web app must not keep them.
    dataset.PatientName, dataset.PatientID = "Test^Patient", "MRN-000"
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
    out = io.BytesIO()
    pydicom.dcmwrite(out, dataset, enforce_file_format=True)
    return out.getvalue()
