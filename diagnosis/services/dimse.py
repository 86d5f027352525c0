"""DICOM's own network protocol (DIMSE), for archives that take no DICOMweb: an AI result capture or a rejection note
stored with C-STORE, and the connection checked with C-ECHO, as kidneyweb's AE title. The archive's address is
written ``dicom://AE_TITLE@host:port``, in the same field as a DICOMweb address; ``dicoms://`` is the same over TLS
(PS3.15 B.1), with the archive's certificate checked against the system's CAs (or ``SSL_CERT_FILE``'s: a hospital's
own CA) and its host name.

The archive's answer counts as a STOW-RS answer does (``pacs``): stored (a warning too: it kept the instance), refused
for good (it cannot take this instance, or does not know kidneyweb), or worth another attempt (out of resources, not
reached, the association refused for now).
"""

from __future__ import annotations

import io
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from .client_certificates import ClientCertificate, client_refused, refuses_client, tls_context, tls_refusal

TIMEOUT_SECONDS = 10
_ADDRESS = re.compile(r"^dicom(?P<tls>s?)://(?P<ae>[^@/:]{1,16})@(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})/?$")
# PS3.4 Annex GG and B.2.3: what the archive's status codes mean, for the administrator.
_REFUSALS = {0x0122: "it does not store this kind of instance", 0x0124: "not authorized", 0x0110: "processing failure"}
# PS3.8 9.3.4: why an archive refuses the association itself, and what the administrator can do about it.
_REJECTION_HINTS = {
    "Calling AE title not recognised": "Ask the archive's administrator to register kidneyweb's AE title {calling}.",
    "Called AE title not recognised": "Check the archive's AE title in its address.",
}


@dataclass(frozen=True)
class Address:
    ae_title: str
    host: str
    port: int
    tls: bool = False

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def parse(url: str) -> Address | None:
    """The DIMSE address ``url`` names (``dicom://AE_TITLE@host:port``, or ``dicoms://`` over TLS); None for another
    scheme. Raises ValidationError for a dicom:// or dicoms:// address written otherwise."""
    if not url.lower().startswith(("dicom://", "dicoms://")):
        return None
    match = _ADDRESS.match(url.strip())
    port = int(match["port"]) if match else 0
    if match is None or not 0 < port < 65536 or match["ae"].strip() != match["ae"] or "\\" in match["ae"]:
        raise ValidationError({"url": [
            "Write a DICOM address as dicom://AE_TITLE@host:port (dicoms:// over TLS), such as "
            "dicoms://PACS@pacs.example.org:2762: the archive's AE title (at most 16 characters), its host name and "
            "its DICOM port."]})
    return Address(ae_title=match["ae"], host=match["host"].strip("[]"), port=port, tls=bool(match["tls"]))


def _tls(address: Address, client: ClientCertificate | None) -> tuple[ssl.SSLContext, str] | None:
    # The archive's certificate and host name checked: the capture carries the patient's name.
    return (tls_context(client), address.host) if address.tls else None


def _tls_problem(address: Address, client: ClientCertificate | None) -> str | None:
    """Why a TLS connection to the archive fails, when it is the handshake (and no retry can help); None otherwise."""
    context, host = _tls(address, client)
    try:
        raw = socket.create_connection((address.host, address.port), timeout=TIMEOUT_SECONDS)
    except OSError:
        return None  # not reached: another attempt may reach it
    hint = "check that this port takes DICOM over TLS"
    try:
        with raw, context.wrap_socket(raw, server_hostname=host):
            pass
    except ssl.SSLCertVerificationError as exc:
        return (f"The archive {address}'s TLS certificate is not trusted ({exc.verify_message}): install the CA that "
                "issued it where SSL_CERT_FILE points, or check the host name.")
    except ssl.SSLError as exc:
        if refuses_client(str(exc.reason or "")):
            return client_refused(f"The archive {address}", client, str(exc.reason))
        return f"TLS with the archive {address} failed ({exc.reason}): {hint}."
    except OSError as exc:
        # Reached, but the connection was closed in the handshake: what a port without TLS does.
        return f"TLS with the archive {address} failed ({exc.strerror or exc.__class__.__name__} in the handshake): {hint}."
    # The handshake went through; in TLS 1.3 a refused client certificate is told only after it.
    refusal = tls_refusal(address.host, address.port, client, timeout=TIMEOUT_SECONDS)
    return client_refused(f"The archive {address}", client, refusal) if refusal else None


def _ae(calling: str, sop_class: str | None = None) -> Any:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_SECONDS
    ae.connection_timeout = TIMEOUT_SECONDS
    ae.add_requested_context(sop_class or Verification, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


def _not_associated(assoc: Any, address: Address, calling: str, client: ClientCertificate | None) -> dict[str, Any]:
    """Why no association was made, and whether another attempt may do better."""
    if assoc.is_rejected:
        answer = assoc.acceptor.primitive
        reason = getattr(answer, "reason_str", "") or "no reason given"
        hint = next((text.format(calling=calling) for key, text in _REJECTION_HINTS.items()
                     if key.lower() in reason.lower()), "")
        permanent = getattr(answer, "result", 1) == 0x01
        return {"delivered": False, "final": permanent, "error": " ".join(filter(None, [
            f"The archive {address} refused the association ({reason}).", hint]))}
    if assoc.is_aborted and assoc.rejected_contexts:
        return {"delivered": False, "final": True,
                "error": f"The archive {address} does not take this kind of instance (no presentation context accepted)."}
    problem = _tls_problem(address, client) if address.tls else None
    if problem:
        return {"delivered": False, "final": True, "error": problem}
    return {"delivered": False, "error": f"Not reached: {address} did not answer as a DICOM archive."}


def _status_outcome(status: Any, address: Address) -> dict[str, Any]:
    code = int(getattr(status, "Status", -1)) if status is not None else -1
    if code == -1:
        return {"delivered": False, "error": f"The archive {address} gave no answer to the store (no status)."}
    if code == 0x0000 or code in (0xB000, 0xB006, 0xB007):  # stored, or stored with a warning (coerced, discarded)
        return {"delivered": True, "error": ""}
    if 0xA700 <= code <= 0xA7FF:
        return {"delivered": False, "error": f"The archive refused the instance for now: status {code:#06x} (out of resources)."}
    meaning = (_REFUSALS.get(code) or ("the data set does not match its SOP class" if 0xA900 <= code <= 0xA9FF else
                                         "it could not understand the instance" if 0xC000 <= code <= 0xCFFF else
                                         "no reason kidneyweb knows"))
    return {"delivered": False, "final": True, "error": f"The archive refused the instance: status {code:#06x} ({meaning})."}


def store(address: Address, instance: bytes, *, calling: str, client: ClientCertificate | None = None) -> dict[str, Any]:
    """C-STORE the DICOM Part 10 ``instance`` at ``address``, as AE ``calling`` (over TLS presenting ``client``):
    how it went, as ``outbound.attempt_record`` takes it (delivered, final, error)."""
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(instance))
    assoc = _ae(calling, str(dataset.SOPClassUID)).associate(address.host, address.port, ae_title=address.ae_title,
                                                              tls_args=_tls(address, client))
    if not assoc.is_established:
        return _not_associated(assoc, address, calling, client)
    try:
        status = assoc.send_c_store(dataset)
    finally:
        assoc.release()
    return _status_outcome(status if status else None, address)


def echo(address: Address, *, calling: str, client: ClientCertificate | None = None) -> str:
    """Check the connection with a C-ECHO as AE ``calling``: what the archive answered in words; raises ValidationError
    with what went wrong."""
    assoc = _ae(calling).associate(address.host, address.port, ae_title=address.ae_title,
                                   tls_args=_tls(address, client))
    if not assoc.is_established:
        raise ValidationError(_not_associated(assoc, address, calling, client)["error"])
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if status and int(status.Status) == 0x0000:
        return f"The archive {address} answered the DICOM echo as {calling}: it is reached."
    raise ValidationError(f"The archive {address} did not answer the DICOM echo ({_status_outcome(status, address)['error']}).")
