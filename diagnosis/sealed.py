"""Credentials that kidneyweb must send on, kept encrypted in the database: the archive's password, the
notification secret.

Unlike a login password or an API token they cannot be hashed, since kidneyweb itself needs them back. Sealed
with AES-256-GCM under a key from the environment (``KIDNEYWEB_CREDENTIALS_KEY``, or one derived from
``SECRET_KEY``), a copy of the database or of a backup no longer hands an archive's password to whoever holds it.

A stored value reads ``sealed:v1:<key id>:<base64 of nonce and ciphertext>``; the field's name is the
associated data, so a value moved into another field fails to open. A value without the prefix is taken as
written in clear (before this existed, or by hand) and is sealed at its next save.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

logger = logging.getLogger(__name__)

PREFIX = "sealed:v1:"
NONCE = 12


class Unreadable(str):
    """A sealed value no key of this server opens. Reads as empty; saved again, it is written back as it was,
    so setting the right key later recovers it. ``reason`` says what to do, for a failed delivery's reason."""

    sealed: str
    reason: str

    def __new__(cls, sealed: str, reason: str) -> "Unreadable":
        value = super().__new__(cls, "")
        value.sealed, value.reason = sealed, reason
        return value


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"kidneyweb credentials key\0" + key).hexdigest()[:16]


def _parse(text: str, name: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise ImproperlyConfigured(f"{name} is not a key: make one with `manage.py reseal_credentials --generate-key` "
                                   "(44 characters of URL-safe base64).")
    return key


def _derived(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"kidneyweb credentials at rest").derive(secret_key.encode("utf-8"))


@lru_cache(maxsize=8)
def _keys(current: str, previous: tuple[str, ...], secret_key: str, fallbacks: tuple[str, ...]) -> tuple[bytes, dict[str, bytes]]:
    # Without a key of its own, the key follows SECRET_KEY; SECRET_KEY_FALLBACKS then still open what the old
    # SECRET_KEY sealed, as they do for sessions, until `reseal_credentials` has moved everything on.
    key = _parse(current, "KIDNEYWEB_CREDENTIALS_KEY") if current else _derived(secret_key)
    readable = [key, *(_parse(text, "KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS") for text in previous),
                *(_derived(old) for old in fallbacks), _derived(secret_key)]
    return key, {_key_id(k): k for k in reversed(readable)}


def keys() -> tuple[bytes, dict[str, bytes]]:
    """The key that seals, and every key that opens, by key id."""
    return _keys(settings.KIDNEYWEB_CREDENTIALS_KEY, tuple(settings.KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS),
                 settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ())))


def generate_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def seal(value: str, *, label: str) -> str:
    if isinstance(value, Unreadable):  # before the empty check: it reads as ""
        return value.sealed
    if not value:
        return ""
    key, _ = keys()
    nonce = secrets.token_bytes(NONCE)
    box = AESGCM(key).encrypt(nonce, value.encode("utf-8"), label.encode("utf-8"))
    return f"{PREFIX}{_key_id(key)}:{base64.b64encode(nonce + box).decode('ascii')}"


def open_sealed(stored: str, *, label: str, remedy: str = "") -> str:
    """The value in clear; an ``Unreadable`` when no key of this server opens it; a value never sealed as it is.
    ``remedy`` is how to replace the value, for the reason (default: set it anew on the Members page)."""
    if not stored or not is_sealed(stored):
        return stored
    key_id, _, body = stored[len(PREFIX):].partition(":")
    key = keys()[1].get(key_id)
    remedy = remedy or f"set the {label} anew on the Members page"
    if key is None:
        reason = (f"The {label} stored here was sealed with a key this server does not have (key id {key_id}): set "
                  f"KIDNEYWEB_CREDENTIALS_KEY (or KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS) to it again, or {remedy}.")
    else:
        try:
            raw = base64.b64decode(body.encode("ascii"), validate=True)
            return AESGCM(key).decrypt(raw[:NONCE], raw[NONCE:], label.encode("utf-8")).decode("utf-8")
        except (binascii.Error, ValueError, InvalidTag):
            reason = f"The {label} stored here fails its check (changed or damaged in the database): {remedy}."
    logger.error("%s", reason)
    return Unreadable(stored, reason)


class SealedTextField(models.TextField):
    """A text field read and written in clear by the code, stored sealed. Not searchable: each sealing differs."""

    def __init__(self, *args, label: str = "", remedy: str = "", **kwargs):
        # remedy is only words for an administrator: not part of the schema, so not in deconstruct().
        self.label, self.remedy = label, remedy
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["label"] = self.label
        return name, path, args, kwargs

    def from_db_value(self, value, expression, connection):
        return value if value is None else open_sealed(value, label=self.label, remedy=self.remedy)

    def to_python(self, value):
        # Backups (dumpdata) hold the sealed form (value_to_string); a restore opens it here and seals it anew.
        if value is None or isinstance(value, Unreadable):
            return value
        return open_sealed(str(value), label=self.label, remedy=self.remedy)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value if value is None else seal(value, label=self.label)

    def value_to_string(self, obj) -> str:
        return self.get_prep_value(self.value_from_object(obj)) or ""
