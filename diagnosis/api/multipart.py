"""Reading a ``multipart/related`` body (RFC 2387), as DICOMweb clients send instances: Django parses only
``multipart/form-data``."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


class MultipartError(ValueError):
    """A body that is not the multipart/related message its Content-Type announces; the message says why."""


@dataclass(frozen=True)
class Part:
    content_type: str  # lower case, without parameters; "" when the part names none
    data: bytes


def content_type_parameters(header: str) -> tuple[str, dict[str, str]]:
    """A Content-Type header's media type (lower case) and parameters (names lower case, values unquoted)."""
    if not header.strip():
        return "", {}
    message = Message()
    message["Content-Type"] = header
    params = {name.lower(): str(value) for name, value in message.get_params(header="Content-Type")[1:]}
    return message.get_content_type(), params


def split_related(body: bytes, boundary: str) -> list[Part]:
    """The parts of a multipart body with this boundary, in order."""
    delimiter = b"--" + boundary.encode("ascii", "replace")
    if body.startswith(delimiter):
        body = b"\r\n" + body
    pieces = body.split(b"\r\n" + delimiter)
    if len(pieces) < 2:
        raise MultipartError("The body holds no part: its boundary does not match the Content-Type's.")
    parts: list[Part] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            return parts  # the closing delimiter; what follows it is an epilogue
        line_end = piece.find(b"\r\n")
        if line_end < 0 and not piece.strip(b" \t"):
            break  # the body ends on a delimiter that is neither closed nor followed by a part
        if line_end < 0 or piece[:line_end].strip(b" \t"):
            raise MultipartError(f"Part {len(parts) + 1} does not start on a line of its own after the boundary.")
        piece = piece[line_end + 2:]
        if piece.startswith(b"\r\n"):
            head, data = b"", piece[2:]
        else:
            head, separator, data = piece.partition(b"\r\n\r\n")
            if not separator:
                raise MultipartError(f"Part {len(parts) + 1} has no blank line after its headers.")
        content_type = ""
        for line in head.split(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-type":
                content_type = value.split(";")[0].strip().lower()
        parts.append(Part(content_type=content_type, data=data))
    raise MultipartError("The body ends without its closing boundary: it was cut short.")
