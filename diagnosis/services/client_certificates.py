"""kidneyweb's TLS client certificate for the archive: for archives that admit only the systems whose certificates
the hospital's CA issued (mutual TLS), over DICOM TLS (``dicoms://``) and DICOMweb (``https://``) alike.

The certificate and its chain are public and kept as they are; the private key is sealed (diagnosis.sealed). Python's
``ssl`` loads a key only from a file, so each connection writes it to a private temporary folder, loads it, and
deletes it at once.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import selectors
from ..models import Organization
from ..sealed import Unreadable
from .staff import policy_change_record

# TLS alerts by which a server refuses the client's certificate, or its lack of one (RFC 8446 6.2), as OpenSSL names
# them in its error reasons.
_CLIENT_ALERTS = ("CERTIFICATE_REQUIRED", "UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED",
                  "UNSUPPORTED_CERTIFICATE", "CERTIFICATE_UNKNOWN", "ACCESS_DENIED")


def refuses_client(reason: str) -> bool:
    """Whether a TLS error's reason is the server refusing kidneyweb's client certificate (or its lack of one)."""
    return any(alert in reason.upper().replace(" ", "_") for alert in _CLIENT_ALERTS)


def client_refused(who: str, client: "ClientCertificate | None", reason: str) -> str:
    """Why no retry can help, and what to do, when ``who`` refused the client certificate with ``reason``."""
    if client is None:
        return (f"{who} asks for a client certificate ({reason}): upload kidneyweb's, issued by a CA it trusts, "
                "on the Members page.")
    return (f"{who} does not accept kidneyweb's client certificate ({reason}): check that it trusts the CA that "
            "issued it, and that the certificate is still valid.")


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate chain (PEM, the certificate first) and its private key in clear, held in memory only."""

    chain: str
    key: str

    def load_into(self, context: ssl.SSLContext) -> None:
        with tempfile.TemporaryDirectory(prefix="kidneyweb-tls-") as folder:  # 0700: this process's user only
            certfile, keyfile = os.path.join(folder, "chain.pem"), os.path.join(folder, "key.pem")
            for path, text in ((certfile, self.chain), (keyfile, self.key)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(text)
            context.load_cert_chain(certfile, keyfile)


def parse(certificate: str, key: str, *, now: datetime.datetime | None = None) -> ClientCertificate:
    """The certificate (with its chain) and key as uploaded, checked: they belong together, the certificate is valid
    now and may identify a client. Raises ValidationError saying what is wrong."""
    try:
        chain = x509.load_pem_x509_certificates(certificate.strip().encode())
    except ValueError:
        raise ValidationError({"certificate": [
            "This is not a certificate in PEM form (text beginning -----BEGIN CERTIFICATE-----)."]}) from None
    try:
        private = serialization.load_pem_private_key(key.strip().encode(), password=None)
    except TypeError:
        raise ValidationError({"key": [
            "The key is protected by a passphrase: export it without one. kidneyweb keeps it sealed."]}) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValidationError({"key": [
            "This is not a private key in PEM form (text beginning -----BEGIN PRIVATE KEY-----)."]}) from None
    leaf = chain[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (leaf.public_key().public_bytes(serialization.Encoding.DER, public)
            != private.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise ValidationError({"key": ["This key does not belong to the certificate (put the certificate "
                                       "kidneyweb's key was issued for first in the file)."]})
    now = now or timezone.now()
    if leaf.not_valid_after_utc <= now:
        raise ValidationError({"certificate": [
            f"This certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}: ask the hospital's CA for a new one."]})
    if leaf.not_valid_before_utc > now:
        raise ValidationError({"certificate": [
            f"This certificate is valid only from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC."]})
    try:
        purposes = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        purposes = None
    if purposes is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in purposes:
        raise ValidationError({"certificate": [
            "This certificate may not identify a client (its extended key usage lacks TLS client authentication): "
            "ask the hospital's CA for a client certificate."]})
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    key_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    return ClientCertificate(chain=pem, key=key_pem)


def tls_context(client: ClientCertificate | None) -> ssl.SSLContext:
    """The system's CAs (or SSL_CERT_FILE's: a hospital's own CA), the host name checked, ``client`` presented."""
    context = ssl.create_default_context()
    if client is not None:
        client.load_into(context)
    return context


def tls_refusal(host: str, port: int, client: ClientCertificate | None, *, timeout: float = 10) -> str:
    """The TLS alert by which the server at ``host``:``port`` refuses kidneyweb's client certificate (or its lack
    of one), or "" when it does not. In TLS 1.3 that alert comes after the client's side of the handshake is done,
    so a client that writes first (an HTTP request) sees only the connection closing: this asks again, and reads."""
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return ""
    try:
        with raw, tls_context(client).wrap_socket(raw, server_hostname=host) as connection:
            connection.settimeout(2)
            connection.recv(1)
    except ssl.SSLError as exc:
        reason = str(exc.reason or exc)
        return reason if refuses_client(reason) else ""
    except OSError:
        return ""
    return ""


def https_refusal(url: str, client: ClientCertificate | None) -> str:
    """Why the https archive at ``url`` refuses kidneyweb's client certificate (or its lack of one), in words with
    what to do; "" when it does not (or ``url`` is not https). Asked after a request got no answer."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return ""
    refusal = tls_refusal(parts.hostname, parts.port or 443, client)
    return client_refused("The archive", client, refusal) if refusal else ""


def https_context(client: ClientCertificate | None) -> ssl.SSLContext | None:
    """A context presenting ``client`` to an https server (checked as usual); None: the default one will do."""
    return None if client is None else tls_context(client)


def of(organization: Organization) -> ClientCertificate | Unreadable | None:
    """The organization's client certificate for its archive; an ``Unreadable`` when its key does not open here."""
    if not organization.pacs_client_certificate:
        return None
    if isinstance(organization.pacs_client_key, Unreadable):
        return organization.pacs_client_key
    return ClientCertificate(chain=organization.pacs_client_certificate, key=organization.pacs_client_key)


@transaction.atomic
def pacs_client_certificate_set(*, organization: Organization, certificate: str, key: str,
                                by: AbstractBaseUser) -> Organization:
    """Present ``certificate`` (PEM, with its chain) and ``key`` to the archive from now on; both empty: none. The
    change is recorded with the certificate's subject and expiry."""
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    if not certificate.strip() and not key.strip():
        if organization.pacs_client_certificate:
            organization.pacs_client_certificate = organization.pacs_client_key = ""
            organization.save(update_fields=["pacs_client_certificate", "pacs_client_key"])
            policy_change_record(organization=organization, by=by, detail="client certificate for the archive removed")
        return organization
    if not certificate.strip() or not key.strip():
        missing = "key" if certificate.strip() else "certificate"
        raise ValidationError({missing: ["Give the certificate and its private key together."]})
    parsed = parse(certificate, key)
    organization.pacs_client_certificate, organization.pacs_client_key = parsed.chain, parsed.key
    organization.save(update_fields=["pacs_client_certificate", "pacs_client_key"])
    shown = selectors.certificate_summary(parsed.chain)
    policy_change_record(organization=organization, by=by, detail=(
        f"client certificate for the archive: {shown.subject}, issued by {shown.issuer}, "
        f"valid until {shown.not_after:%Y-%m-%d}")[:200])
    return organization
