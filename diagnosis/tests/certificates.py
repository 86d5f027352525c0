"""Certificates made for tests: a CA of their own, an archive's server certificate and kidneyweb's client one."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
ISSUED: list["Issued"] = []  # every certificate made, so that a test can find the key of one it holds as PEM


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self, password: bytes | None = None) -> str:
        encryption = (serialization.BestAvailableEncryption(password) if password
                      else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      encryption).decode()

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """As PEM files ``name``.pem and ``name``.key."""
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        cert.write_text(self.pem)
        key.write_text(self.key_pem())
        return cert, key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(common_name: str, *, by: Issued | None = None, ca: bool = False, host: str | None = None,
          purpose: x509.ObjectIdentifier | None = None, valid_from: datetime.datetime | None = None,
          valid_until: datetime.datetime | None = None) -> Issued:
    """A certificate for ``common_name``, issued by ``by`` (self-signed without); for a server ``host`` (an IP
    address), with extended key usage ``purpose`` when given."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(_name(common_name))
               .issuer_name(by.certificate.subject if by else _name(common_name)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(valid_from or NOW - datetime.timedelta(minutes=5))
               .not_valid_after(valid_until or NOW + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
    if host:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False)
    if purpose is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([purpose]), False)
    issued = Issued(builder.sign(by.key if by else key, hashes.SHA256()), key)
    ISSUED.append(issued)
    return issued


def client(common_name: str, *, by: Issued, **kwargs) -> Issued:
    return issue(common_name, by=by, purpose=ExtendedKeyUsageOID.CLIENT_AUTH, **kwargs)
