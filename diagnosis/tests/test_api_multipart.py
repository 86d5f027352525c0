"""Reading multipart/related bodies (RFC 2387) as DICOMweb clients send them."""

import pytest

from diagnosis.api.multipart import MultipartError, content_type_parameters, split_related


def test_parts_keep_their_bytes_exactly_and_preamble_and_epilogue_are_ignored():
    binary = bytes(range(256)) * 4 + b"\r\n--not-the-boundary\r\n"
    body = (b"preamble\r\n--b1\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n"
            b"Content-Length: 99\r\n\r\n" + binary + b"\r\n--b1  \r\n\r\nheaderless\r\n--b1--\r\nepilogue\r\n--b1\r\n")

    parts = split_related(body, "b1")

    assert [(part.content_type, part.data) for part in parts] == [("application/dicom", binary), ("", b"headerless")]


def test_a_body_starting_with_its_boundary_has_no_preamble_to_skip():
    assert split_related(b"--b\r\n\r\nx\r\n--b--", "b")[0].data == b"x"


@pytest.mark.parametrize(("body", "says"), [
    (b"--b\r\n\r\nx\r\n--b", "cut short"),
    (b"--b\r\nContent-Type: application/dicom", "no blank line after its headers"),
    (b"--bx\r\n\r\nx\r\n--b--", "does not start on a line of its own"),
    (b"nothing here", "boundary does not match"),
])
def test_a_malformed_body_is_refused_with_the_reason(body, says):
    with pytest.raises(MultipartError, match=says):
        split_related(body, "b")


def test_content_type_parameters_are_unquoted_and_named_in_lower_case():
    assert content_type_parameters('Multipart/Related; Type="application/dicom"; boundary="a b"') == (
        "multipart/related", {"type": "application/dicom", "boundary": "a b"})
    assert content_type_parameters("") == ("", {})
