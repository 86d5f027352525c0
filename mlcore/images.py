"""Decoding one CT slice (PNG, JPEG or DICOM) into pixels, or refusing it with the reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mlcore.dicom import DicomError, is_dicom, read_dicom

# What Pillow raises for a file that is not an image, is cut short, or claims too many pixels.
DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError)


# Greyscale of more than 8 bits per pixel (16-bit PNG exports); Pillow's convert("L") clips these at 255.
HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


class ImageError(ValueError):
    """An image that cannot be read or decoded."""


def _grey_8bit(image: Image.Image) -> np.ndarray:
    """Grey levels in 0-255. Values of a high-bit-depth slice are kept when they fit (an 8-bit slice saved
    in a 16-bit file), otherwise stretched from its lowest to its highest value, as a DICOM slice without
    a window is: clipping would turn a raw 16-bit export white."""
    if image.mode not in HIGH_BIT_DEPTH_MODES:
        return np.asarray(image.convert("L"))
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high <= 255:
        return np.round(values).astype(np.uint8)
    return np.round((values - low) / max(high - low, 1e-6) * 255).astype(np.uint8)


def high_bit_depth_as_png(data: bytes) -> bytes | None:
    """A PNG of more than 8 bits per grey pixel as the 8-bit grey PNG the model reads; None for others."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in HIGH_BIT_DEPTH_MODES:
            return None
        image.load()
        grey = _grey_8bit(image)
    out = io.BytesIO()
    Image.fromarray(grey).save(out, format="PNG")
    return out.getvalue()


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
            if image.mode in ("L", "1", "LA", *HIGH_BIT_DEPTH_MODES):
                array = _grey_8bit(image)[..., None]
            else:
                array = np.asarray(image.convert("RGB"))
    except DECODE_ERRORS as exc:
        raise ImageError(f"cannot decode image: {exc}") from exc
    return np.ascontiguousarray(array, dtype=np.uint8)


def decode_grey(path: Path) -> np.ndarray:
    """The fully decoded slice in 8-bit grey; the one read that hashes and thumbnails start from."""
    try:
        with Image.open(path) as image:
            return _grey_8bit(image)
    except DECODE_ERRORS as exc:
        raise ImageError(f"cannot decode image: {exc}") from exc
