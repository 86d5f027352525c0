"""Decoding one CT slice (PNG, JPEG or DICOM) into pixels, or refusing it with the reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mlcore.dicom import DicomError, is_dicom, read_dicom

# What Pillow raises for a file that is not an image, is cut short, or claims too many pixels.
DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError)


class ImageError(ValueError):
    """An image that cannot be read or decoded."""


def load_image(source: Path | str | bytes) -> np.ndarray:
    """Decode a PNG, JPEG or DICOM slice into a uint8 array of shape (H, W, 1) or (H, W, 3).

    Greyscale stays one channel and colour becomes RGB; the model itself decides how
    to combine channels, so callers never need to know what it was trained on. A DICOM
    slice is windowed into 0-255 as the training images were (see mlcore.dicom).
    """
    try:
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read image: {exc}") from exc
    if is_dicom(data):
        try:
            return read_dicom(data).pixels
        except DicomError as exc:
            raise ImageError(f"cannot use DICOM file: {exc}") from exc
    try:
        image = Image.open(io.BytesIO(data))
        with image:
            image.load()
            if image.mode in ("L", "I;16", "I", "F", "1", "LA"):
                array = np.asarray(image.convert("L"))[..., None]
            else:
                array = np.asarray(image.convert("RGB"))
    except DECODE_ERRORS as exc:
        raise ImageError(f"cannot decode image: {exc}") from exc
    return np.ascontiguousarray(array, dtype=np.uint8)


def decode_grey(path: Path) -> np.ndarray:
    """The fully decoded slice in 8-bit grey; the one read that hashes and thumbnails start from."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))
    except DECODE_ERRORS as exc:
        raise ImageError(f"cannot decode image: {exc}") from exc
