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


def _png16(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_16_bit_slice_is_stretched_to_its_range_not_clipped_white():
    raw = np.array([[0, 1000], [2000, 4000]])  # stored CT values, far above 255

    image = load_image(_png16(raw))

    assert image.shape == (2, 2, 1) and image[..., 0].tolist() == [[0, 64], [128, 255]]


def test_a_16_bit_file_holding_8_bit_values_keeps_them():
    assert load_image(_png16(np.array([[10, 20], [30, 250]])))[..., 0].tolist() == [[10, 20], [30, 250]]


def test_a_16_bit_png_is_rewritten_as_the_8_bit_png_the_model_reads_and_others_are_left_alone():
    from mlcore.images import high_bit_depth_as_png

    converted = high_bit_depth_as_png(_png16(np.array([[0, 4000]])))

    assert Image.open(io.BytesIO(converted)).mode == "L"
    assert load_image(converted)[..., 0].tolist() == [[0, 255]]
    assert high_bit_depth_as_png(_png_bytes(np.zeros((2, 2), np.uint8), "L")) is None
