"""HL7 v2's Minimal Lower Layer Protocol (MLLP): one message framed as <VT> message <FS><CR> on a TCP connection
(over TLS for mllps://), and the receiver's acknowledgement (ACK) read back the same way."""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from .client_certificates import refuses_client

START, END = b"\x0b", b"\x1c\r"
TIMEOUT_SECONDS = 10
MAX_ACK_BYTES = 1 << 16  # an acknowledgement is a few segments
_ADDRESS = re.compile(r"^(?P<scheme>mllps?)://(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(?P<port>\d{1,5})/?$")


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    tls: bool


@dataclass(frozen=True)
class Ack:
    """The receiver's answer: MSA-1 (AA accepted, AE error, AR rejected; CA, CE, CR in enhanced mode), the control
    id it acknowledges (MSA-2) and what it said (MSA-3, or ERR's user message)."""

    code: str
    control_id: str
    text: str

    @property
    def accepted(self) -> bool:
        return self.code in ("AA", "CA")

    @property
    def rejected(self) -> bool:
        # The receiver refuses the message itself (its version, type or processing id): sending it again cannot help.
        return self.code in ("AR", "CR")


class NotAcknowledged(Exception):
    """No acknowledgement came back: not reached, cut off, timed out, or an answer that was not one. ``refused``:
    the TLS alert by which the record system refused kidneyweb's client certificate (or its lack of one), which no
    retry changes."""

    def __init__(self, message: str, *, refused: str = "") -> None:
        super().__init__(message)
        self.refused = refused


def parse(address: str) -> Address:
    """The host and port of ``mllp://host:port`` (``mllps://`` over TLS). Raises ValidationError otherwise."""
    match = _ADDRESS.match(address.strip())
    port = int(match["port"]) if match else 0
    if match is None or not 0 < port < 65536:
        raise ValidationError({"address": [
            "Write the record system's HL7 address as mllp://host:port (mllps:// over TLS), such as "
            "mllps://engine.example.org:6661: its host name and the port its HL7 listener takes results on."]})
    return Address(host=match["host"].strip("[]"), port=port, tls=match["scheme"] == "mllps")


def send(address: Address, message: bytes, *, context: ssl.SSLContext | None = None) -> Ack:
    """Send one message and read its acknowledgement. Raises NotAcknowledged when none came back."""
    try:
        with socket.create_connection((address.host, address.port), timeout=TIMEOUT_SECONDS) as raw:
            # The receiver's certificate and host name checked over TLS: the message carries the patient's name.
            connection = ((context or ssl.create_default_context()).wrap_socket(raw, server_hostname=address.host)
                          if address.tls else raw)
            connection.sendall(START + message + END)
            answer = _read_frame(connection)
    except ssl.SSLError as exc:
        reason = str(exc.reason or exc)
        raise NotAcknowledged(f"TLS with the record system failed: {reason}.",
                              refused=reason if refuses_client(reason) else "") from None
    except TimeoutError:
        raise NotAcknowledged(f"No answer from the record system within {TIMEOUT_SECONDS} s.") from None
    except OSError as exc:
        raise NotAcknowledged(f"Not reached: {exc.strerror or exc}.") from None
    return parse_ack(answer)


def _read_frame(connection: socket.socket) -> bytes:
    received = b""
    while END not in received:
        chunk = connection.recv(4096)
        if not chunk:
            raise NotAcknowledged("The record system closed the connection without acknowledging the message.")
        received += chunk
        if len(received) > MAX_ACK_BYTES:
            raise NotAcknowledged("The record system's answer was too long for an acknowledgement.")
    start = received.find(START)
    return received[start + 1 if start >= 0 else 0: received.find(END)]


def parse_ack(frame: bytes) -> Ack:
    """The MSA (and ERR) of an acknowledgement. Raises NotAcknowledged for an answer without one."""
    text = frame.decode("utf-8", errors="replace")
    segments = [segment for segment in re.split(r"[\r\n]+", text) if segment]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        raise NotAcknowledged("The record system answered with something other than an HL7 acknowledgement.")
    field, component = segments[0][3], segments[0][4]
    fields = {segment[:3]: segment.split(field) for segment in reversed(segments)}
    msa = fields.get("MSA")
    if msa is None or len(msa) < 2:
        raise NotAcknowledged("The record system's acknowledgement had no MSA segment.")
    said = msa[3] if len(msa) > 3 else ""
    err = fields.get("ERR")
    if not said and err is not None and len(err) > 8:
        said = err[8]  # ERR-8, the user message
    return Ack(code=msa[1].strip().upper(), control_id=msa[2].strip() if len(msa) > 2 else "",
               text=said.replace(component, " ").strip()[:200])
