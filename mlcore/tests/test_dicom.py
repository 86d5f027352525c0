"""DICOM slices reach the model windowed as the training images were, or are refused with a reason."""

import io

import numpy as np
import pytest

from mlcore.images import ImageError, load_image
from mlcore.dicom import DEFAULT_CT_WINDOW, DicomError, is_dicom, read_dicom, read_header
from mlcore.synthetic import dicom_bytes

# Stored values of a scanner writing HU = stored - 1024: air, fat, soft tissue at the window's centre, bone.
AIR, FAT, TISSUE, BONE = 24, 924, 1064, 2024


def _slice(*values: int) -> np.ndarray:
    return np.array([list(values)] * 4, dtype=np.uint16)


def test_a_ct_slice_is_windowed_from_hounsfield_units_into_grey():
    image = load_image(dicom_bytes(_slice(AIR, FAT, TISSUE, BONE), window=(40, 400)))
    assert image.shape == (4, 4, 1) and image.dtype == np.uint8
    # Air and bone lie outside a 400 HU window around 40: black and white; fat (-100 HU) is dark, tissue mid-grey.
    assert list(image[0, :, 0]) == [0, 38, 128, 255]


def test_the_slices_own_window_wins_over_the_default():
    narrow = read_dicom(dicom_bytes(_slice(FAT, TISSUE), window=(40, 100)))
    assert narrow.window == (40.0, 100.0)
    assert narrow.pixels[0, 0, 0] == 0  # fat is below a 100 HU window


def test_of_several_windows_the_first_is_the_default_view():
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(_slice(FAT, TISSUE))))
    dataset.WindowCenter, dataset.WindowWidth = ["60", "500"], ["300", "2000"]
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    assert read_dicom(out.getvalue()).window == (60.0, 300.0)


def test_a_ct_slice_without_a_window_gets_the_abdominal_window():
    without = read_dicom(dicom_bytes(_slice(AIR, TISSUE, BONE), window=None))
    assert without.window == DEFAULT_CT_WINDOW
    assert list(without.pixels[0, :, 0]) == [0, 128, 255]


def test_an_8_bit_capture_without_a_window_keeps_its_grey_levels():
    # A workstation's secondary capture of an exported slice: already windowed, not to be stretched again.
    capture = dicom_bytes(np.array([[10, 20], [30, 40]], np.uint8), slope=1, intercept=0, window=None, modality="OT")
    assert read_dicom(capture).pixels[..., 0].tolist() == [[10, 20], [30, 40]]


def test_a_16_bit_non_ct_slice_without_a_window_is_stretched_to_its_range():
    other = read_dicom(dicom_bytes(_slice(100, 300), slope=1, intercept=0, window=None, modality="MR"))
    assert other.window is None and list(other.pixels[0, :, 0]) == [0, 255]


def test_rescale_slope_and_intercept_are_applied():
    # The same HU written as stored * 2 - 2048.
    image = load_image(dicom_bytes(_slice(AIR // 2 + 512, TISSUE // 2 + 512), slope=2, intercept=-2048))
    assert list(image[0, :, 0]) == [0, 128]


@pytest.mark.parametrize("keyword, values", [("RescaleSlope", ["1", "2"]), ("RescaleIntercept", ["-1024", "0"]),
                                             ("NumberOfFrames", ["1", "2"])])
def test_a_header_number_with_several_values_is_refused_by_name(keyword, values):
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(_slice(FAT, TISSUE))))
    setattr(dataset, keyword, values)
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    with pytest.raises(DicomError, match=f"its {keyword} .* is not a single number"):
        read_dicom(out.getvalue())


def test_monochrome1_is_inverted_so_bone_stays_white():
    image = load_image(dicom_bytes(_slice(AIR, BONE), photometric="MONOCHROME1"))
    assert list(image[0, :, 0]) == [255, 0]


def test_a_multi_frame_file_is_refused_with_its_frame_count():
    frames = np.stack([_slice(TISSUE, TISSUE)] * 3)
    with pytest.raises(ImageError, match="3 frames"):
        load_image(dicom_bytes(frames))


def test_a_slice_over_the_pixel_limit_is_refused_before_decoding():
    with pytest.raises(DicomError, match="limit"):
        read_dicom(dicom_bytes(np.zeros((64, 64), np.uint16)), max_pixels=1000)


def test_a_truncated_dicom_file_is_refused_with_a_reason():
    data = dicom_bytes(np.full((64, 64), TISSUE, np.uint16))
    with pytest.raises(ImageError, match="DICOM"):
        load_image(data[: len(data) // 2])


def test_only_a_dicom_preamble_is_taken_for_dicom():
    assert is_dicom(dicom_bytes(_slice(TISSUE)))
    assert not is_dicom(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)
    assert not is_dicom(b"DICM")


def _encapsulated(syntax: str, fragment: bytes) -> bytes:
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(np.full((8, 8), TISSUE, np.uint16))))
    dataset.file_meta.TransferSyntaxUID = syntax
    dataset.PixelData = pydicom.encaps.encapsulate([fragment])
    dataset["PixelData"].VR = "OB"
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80",
                                    "1.2.840.10008.1.2.4.90"],
                         ids=["jpeg-lossless-sv1", "rle", "jpeg-ls", "jpeg-2000-lossless"])
@pytest.mark.parametrize("dtype, intercept", [(np.uint16, -1024.0), (np.int16, 0.0)], ids=["unsigned", "signed"])
def test_a_losslessly_compressed_slice_reads_exactly_like_the_uncompressed_one(syntax, dtype, intercept):
    import pydicom

    stored = np.random.default_rng(5).integers(-1000 if dtype == np.int16 else 0, 3000, (40, 56)).astype(dtype)
    compressed = dicom_bytes(stored, intercept=intercept, transfer_syntax=syntax)
    assert pydicom.dcmread(io.BytesIO(compressed)).file_meta.TransferSyntaxUID == syntax
    # Every pixel survives: the windowed grey image is the same as from the uncompressed file.
    plain = read_dicom(dicom_bytes(stored, intercept=intercept)).pixels
    assert np.array_equal(read_dicom(compressed).pixels, plain)
    assert len(np.unique(plain)) > 50


def test_a_compression_without_a_decoder_is_refused_with_what_to_do():
    from pydicom.uid import MPEG2MPML

    with pytest.raises(DicomError, match="compressed as MPEG2.*export the slice uncompressed"):
        read_dicom(_encapsulated(MPEG2MPML, b"\0\0\1\xb3" + b"\0" * 60))


def test_corrupt_compressed_pixel_data_is_refused_as_corrupt():
    from pydicom.uid import JPEG2000Lossless

    with pytest.raises(DicomError, match="incomplete or corrupt"):
        read_dicom(_encapsulated(JPEG2000Lossless, b"\xff\x4f\xff\x51" + b"\0" * 60))


def _colour_dicom(photometric: str) -> bytes:
    """An uncompressed 8 x 8 colour slice in the given photometric interpretation."""
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(np.zeros((8, 8), np.uint8))))
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation, dataset.PlanarConfiguration = 3, photometric, 0
    dataset.PixelData = (np.arange(8 * 8 * 3) % 200).astype(np.uint8).tobytes()
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("photometric", ["YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"])
def test_a_colour_space_pydicom_cannot_convert_is_refused_with_what_to_do(photometric):
    with pytest.raises(DicomError, match=f"colour space {photometric} cannot be converted|does not match its header"):
        read_dicom(_colour_dicom(photometric))


def test_an_rgb_slice_is_read_as_colour():
    assert read_dicom(_colour_dicom("RGB")).pixels.shape == (8, 8, 3)


def test_pixel_data_holding_more_frames_than_the_header_says_is_refused():
    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(np.stack([_slice(TISSUE, TISSUE)] * 2))))
    dataset.NumberOfFrames = 1
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)

    with pytest.raises(ImageError, match="does not match its header|incomplete or corrupt"):
        load_image(out.getvalue())


def test_the_header_names_the_patient_id_and_modality_without_decoding_pixels():
    header = read_header(dicom_bytes(_slice(AIR, TISSUE), patient_id="  MRN-7 ", modality="ct"))
    assert (header.patient_id, header.modality) == ("MRN-7", "CT")
    assert read_header(dicom_bytes(_slice(AIR), patient_id=None)).patient_id == ""


def test_an_unreadable_header_is_refused_with_a_reason():
    with pytest.raises(DicomError, match="not a readable DICOM file"):
        read_header(b"a text file, not DICOM")


def test_the_header_names_the_study_and_series_an_instance_belongs_to():
    header = read_header(dicom_bytes(_slice(AIR), study_uid="1.2.826.0.1.3680043.8.498.1", series_uid="1.2.826.0.1.2",
                                     accession_number=" A-20261206-7 "))
    assert (header.study_instance_uid, header.series_instance_uid) == ("1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.2")
    assert header.accession_number == "A-20261206-7"


def test_the_header_says_when_the_study_was_made_and_what_it_is_or_nothing_when_unreadable():
    import datetime

    header = read_header(dicom_bytes(_slice(AIR), study_date="20261205", study_time="093015.25",
                                     study_description=" CT ABDOMEN W CONTRAST "))
    with pytest.warns(UserWarning, match="Invalid value for VR"):  # pydicom writes them as a sloppy scanner would
        odd = read_header(dicom_bytes(_slice(AIR), study_date="05/12/2026", study_time="late"))
    bare = read_header(dicom_bytes(_slice(AIR)))

    assert (header.study_date, header.study_time) == (datetime.date(2026, 12, 5), datetime.time(9, 30, 15, 250000))
    assert type(header.study_date) is datetime.date and header.study_description == "CT ABDOMEN W CONTRAST"
    assert (odd.study_date, odd.study_time) == (None, None)  # free text is no reason to refuse a slice
    assert (bare.study_date, bare.study_time, bare.study_description) == (None, None, "")
