"""DICOM's own network protocol, received: a storage SCP (DIMSE C-STORE) for archives, routers and modalities that
send no DICOMweb. Each CT slice is filed as the DICOMweb store files it (``services.dicom_instances_store``: for
the patient its PatientID names, diagnosed like any upload, a refusal kept for the administrators), as the
kidneyweb account configured for the sender's AE title, so it lands in that account's organization.

Only the AE titles configured (``KIDNEYWEB_DICOM_PEERS``) may open an association, and only by calling kidneyweb's
own AE title; C-ECHO answers the archive's administrator checking the connection. Plain DIMSE is unencrypted and
an AE title is only a name: over TLS (``tls_context``), with the senders' certificates required where a client CA
is set, the slices are private on the wire and only a sender holding a certificate the hospital's CA signed
connects.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections

from . import selectors, services
from .services.dicom_store import DICOM

logger = logging.getLogger(__name__)

# PS3.4 B.2.3 and GG: a refusal the sender should not repeat as is, and one it should send again later.
NOT_AUTHORIZED = 0x0124
OUT_OF_RESOURCES = 0xA700
PROCESSING_FAILURE = 0x0110
SUCCESS = 0x0000


@dataclass(frozen=True)
class Peer:
    ae_title: str
    username: str


def peers_parse(entries: list[str]) -> list[Peer]:
    """``AE=username`` entries, checked: an AE title of 1 to 16 characters, each once, each with a username."""
    peers = []
    for entry in entries:
        ae_title, sep, username = entry.partition("=")
        ae_title, username = ae_title.strip(), username.strip()
        if not sep or not username or not 0 < len(ae_title) <= 16 or "\\" in ae_title:
            raise ImproperlyConfigured(f"KIDNEYWEB_DICOM_PEERS: write each sender as AE_TITLE=username, not {entry!r}.")
        if any(peer.ae_title == ae_title for peer in peers):
            raise ImproperlyConfigured(f"KIDNEYWEB_DICOM_PEERS names {ae_title} twice.")
        peers.append(Peer(ae_title=ae_title, username=username))
    return peers


def account_of(peer: Peer) -> AbstractBaseUser | None:
    """The active kidneyweb account, in an organization, a sender files as; None otherwise (read per slice: an
    account deactivated meanwhile stops its sender at once)."""
    user = get_user_model().objects.filter(username=peer.username, is_active=True).first()
    return user if user is not None and selectors.organization_of(user) is not None else None


def store(*, peer: Peer, data: bytes) -> tuple[int, str]:
    """File one instance (DICOM Part 10 bytes) a peer sent; returns the C-STORE status and, for a refusal, why."""
    close_old_connections()  # this thread's connection may have gone stale between associations
    try:
        user = account_of(peer)
        if user is None:
            return NOT_AUTHORIZED, f"kidneyweb has no active account {peer.username!r} in an organization for {peer.ae_title}"
        try:
            (outcome,) = services.dicom_instances_store(instances=[(DICOM, data)], uploaded_by=user)
        except services.NoActiveModelVersion as exc:
            return OUT_OF_RESOURCES, str(exc)
        if outcome.scan is not None:
            return SUCCESS, ""
        return outcome.failure_code or PROCESSING_FAILURE, outcome.failure
    finally:
        close_old_connections()


def tls_context(*, cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """A server context with the listener's certificate chain and key (PEM files), TLS 1.2 at least; requiring the
    sender's certificate, signed by ``client_ca``, when given. Raises ImproperlyConfigured for a file it cannot
    use."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
        if client_ca:
            context.load_verify_locations(cafile=client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ImproperlyConfigured(f"The DICOM listener's TLS files cannot be used: {exc}") from exc
    return context


def server(*, ae_title: str, peers: list[Peer], port: int, host: str = "0.0.0.0",
           tls: ssl.SSLContext | None = None):
    """The listening storage SCP (pynetdicom), over ``tls`` when given, started in the background; ``.shutdown()``
    stops it."""
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
    from pynetdicom.sop_class import CTImageStorage, EnhancedCTImageStorage, Verification

    by_title = {peer.ae_title: peer for peer in peers}

    def on_store(event):
        peer = by_title[event.assoc.requestor.ae_title.strip()]
        status, why = store(peer=peer, data=event.encoded_dataset(include_meta=True))
        if status != SUCCESS:
            logger.warning("C-STORE from %s refused (0x%04X): %s", peer.ae_title, status, why)
            return _status(status, why)
        return SUCCESS

    ae = AE(ae_title=ae_title)
    ae.require_called_aet = True
    ae.require_calling_aet = list(by_title)
    # Every transfer syntax pydicom decodes (compressed ones included: archives send what they hold).
    for sop_class in (CTImageStorage, EnhancedCTImageStorage):
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    return ae.start_server((host, port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)], ssl_context=tls)


def _status(code: int, comment: str):
    from pydicom.dataset import Dataset

    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]  # LO: the sender's log shows why
    return status
