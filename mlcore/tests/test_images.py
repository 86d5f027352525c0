"""Slices decode into the pixels the model reads, or are refused with the reason."""

import io

import numpy as np
import pytest
from PIL import Image

from mlcore.images import ImageError, load_image


def _png_bytes(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_load_image_keeps_grey_as_one_channel_and_colour_as_rgb():
    grey = load_image(_png_bytes(np.full((10, 12), 7, np.uint8), "L"))
    rgb = load_image(_png_bytes(np.zeros((10, 12, 3), np.uint8), "RGB"))
    assert grey.shape == (10, 12, 1) and grey.dtype == np.uint8 and grey[0, 0, 0] == 7
    assert rgb.shape == (10, 12, 3)


def test_load_image_rejects_truncated_and_non_image_bytes():
    data = _png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8), "L")
    with pytest.raises(ImageError):
        load_image(data[: len(data) // 2])
    with pytest.raises(ImageError):
        load_image(b"not an image at all")


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims another size (and a matching checksum): a decompression bomb."""
    import struct
    import zlib

    data = bytearray(_png_bytes(np.zeros((2, 2), np.uint8), "L"))
    ihdr = data[12:29]  # chunk type and the 13 header bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def test_an_image_claiming_more_pixels_than_pillow_allows_is_refused_not_raised():
    with pytest.raises(ImageError, match="cannot decode image"):
        load_image(png_declaring(30000, 30000))
