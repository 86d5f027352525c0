"""Each refusal of validate_scan_image, and that the content, not the name, decides."""

import io
import struct
import zlib

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageFile

from diagnosis.validators import validate_scan_image
from mlcore.synthetic import dicom_bytes

from .factories import image_bytes


def upload(data: bytes, name: str = "slice.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def refusal(data: bytes, name: str = "slice.png") -> ValidationError:
    with pytest.raises(ValidationError) as error:
        validate_scan_image(upload(data, name))
    return error.value


def png_declaring_size(width: int, height: int) -> bytes:
    """A 1×1 PNG whose header is rewritten to claim another size (with a valid CRC)."""
    data = bytearray(image_bytes("PNG", (1, 1)))
    ihdr_start = 8 + 4  # signature, then the chunk length
    body = bytearray(data[ihdr_start:ihdr_start + 4 + 13])  # b"IHDR" + 13 bytes of fields
    body[4:12] = struct.pack(">II", width, height)
    data[ihdr_start:ihdr_start + 17] = body
    data[ihdr_start + 17:ihdr_start + 21] = struct.pack(">I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)
    return bytes(data)


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "L"), ("PNG", "RGB"), ("JPEG", "L"), ("JPEG", "RGB")])
def test_grey_and_colour_png_and_jpeg_are_accepted(fmt, mode):
    checked = validate_scan_image(upload(image_bytes(fmt, (40, 30), mode)))

    assert (checked.format, checked.width, checked.height) == (fmt, 40, 30)


def test_a_16_bit_grey_png_is_stored_as_the_8_bit_png_the_model_reads():
    buffer = io.BytesIO()
    Image.fromarray(np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)).save(buffer, format="PNG")

    checked = validate_scan_image(upload(buffer.getvalue()))

    stored = Image.open(io.BytesIO(checked.data))
    assert (checked.format, stored.mode, checked.width, checked.height) == ("PNG", "L", 2, 2)
    assert np.asarray(stored).tolist() == [[0, 64], [128, 255]]


def test_the_content_decides_the_format_not_the_extension():
    checked = validate_scan_image(upload(image_bytes("JPEG"), name="looks-like.png"))

    assert checked.format == "JPEG"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_refused_even_when_named_png(fmt):
    error = refusal(image_bytes(fmt), name="slice.png")

    assert error.code == "unsupported_format"
    assert "not a PNG, JPEG or DICOM" in error.messages[0]


def test_text_is_refused():
    assert refusal(b"%PDF-1.4 definitely not a picture").code == "unsupported_format"


def test_an_empty_file_is_refused():
    assert refusal(b"").code == "empty_file"


def test_a_file_over_the_size_limit_is_refused(settings):
    data = image_bytes("PNG", (64, 64))
    settings.KIDNEYWEB_MAX_UPLOAD_BYTES = len(data) - 1

    error = refusal(data)

    assert error.code == "file_too_large"
    assert "limit" in error.messages[0]


def test_a_file_at_the_size_limit_is_accepted(settings):
    data = image_bytes("PNG", (64, 64))
    settings.KIDNEYWEB_MAX_UPLOAD_BYTES = len(data)

    assert validate_scan_image(upload(data)).format == "PNG"


def test_a_stream_without_a_size_is_still_cut_off_at_the_limit(settings):
    settings.KIDNEYWEB_MAX_UPLOAD_BYTES = 100

    with pytest.raises(ValidationError) as error:
        validate_scan_image(io.BytesIO(image_bytes("PNG", (64, 64))))

    assert error.value.code == "file_too_large"


def test_an_image_over_the_pixel_limit_is_refused(settings):
    settings.KIDNEYWEB_MAX_IMAGE_PIXELS = 40 * 30 - 1

    error = refusal(image_bytes("PNG", (40, 30)))

    assert error.code == "too_many_pixels"
    assert "40×30" in error.messages[0]


def test_the_pixel_limit_is_checked_from_the_header_before_decoding():
    # 5000×5000 declared, a single pixel of data: decoding would fail as truncated, so a
    # too_many_pixels answer shows the header was judged first.
    assert refusal(png_declaring_size(5000, 5000)).code == "too_many_pixels"


def test_a_decompression_bomb_header_is_refused_as_too_many_pixels():
    # Far beyond Pillow's own bomb threshold: Pillow refuses at open, and the message stays ours.
    error = refusal(png_declaring_size(40000, 40000))

    assert error.code == "too_many_pixels"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_truncated_image_is_refused(fmt):
    data = image_bytes(fmt, (128, 128), "RGB")

    error = refusal(data[: len(data) // 2])

    assert error.code == "corrupt_image"
    assert "truncated or corrupt" in error.messages[0]


def test_a_png_with_a_damaged_chunk_is_refused():
    data = bytearray(image_bytes("PNG", (64, 64)))
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0xFF

    assert refusal(bytes(data)).code == "corrupt_image"


def test_truncated_images_are_refused_even_if_pillow_was_told_to_load_them(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = image_bytes("JPEG", (128, 128), "RGB")

    assert refusal(data[: len(data) // 2]).code == "corrupt_image"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the global is restored for whoever set it


def test_a_declared_size_that_pillow_can_open_is_reported_by_the_header():
    with Image.open(io.BytesIO(png_declaring_size(5000, 5000))) as image:
        assert image.size == (5000, 5000)


def test_a_dicom_ct_slice_is_accepted_as_a_windowed_png_without_its_header():
    # HU -1024 (air) and +976 (bone), stored as HU + 1024.
    stored = np.tile(np.array([0, 2000], np.uint16), (30, 20))
    checked = validate_scan_image(upload(dicom_bytes(stored), name="IM0001.dcm"))

    assert (checked.format, checked.width, checked.height) == ("PNG", 40, 30)
    with Image.open(io.BytesIO(checked.data)) as image:
        assert image.mode == "L" and image.getextrema() == (0, 255)
    # Patient identifiers in the DICOM header are not carried into what is stored.
    assert b"MRN-000" not in checked.data and b"Test^Patient" not in checked.data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (dicom_bytes(np.zeros((3, 8, 8), np.uint16)), "3 frames"),
        (dicom_bytes(np.zeros((64, 64), np.uint16))[:4000], "incomplete or corrupt"),
    ],
    ids=["multi-frame", "truncated"],
)
def test_an_unusable_dicom_file_is_refused_with_its_reason(data, reason):
    error = refusal(data, name="IM0001.dcm")

    assert error.code == "unsupported_dicom"
    assert error.messages[0].startswith("The DICOM file cannot be used:") and reason in error.messages[0]


def test_a_dicom_slice_over_the_pixel_limit_is_refused(settings):
    settings.KIDNEYWEB_MAX_IMAGE_PIXELS = 1000

    error = refusal(dicom_bytes(np.zeros((64, 64), np.uint16)), name="IM0001.dcm")

    assert error.code == "unsupported_dicom" and "limit" in error.messages[0]
