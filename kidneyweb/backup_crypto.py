"""Encryption of backups at rest: AES-256-GCM over 1 MiB chunks (the STREAM construction).

A backup holds patient data, password hashes, API tokens and two-factor secrets, and it is kept where the
database's own protections do not reach: a second disk, another server, off-site storage. With a key
configured, every file of it is sealed as it is written, so no plaintext copy ever lands beside it.

Chunks, not one message: the database dump and the scans run to gigabytes, and an AEAD message must be held
whole to be checked. Each chunk's nonce is a random per-file prefix, the chunk's counter and a flag marking the
last chunk; the file's header and name are its associated data. A chunk therefore cannot be reordered, dropped,
moved into another file or the file cut short without its authentication failing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct
from pathlib import Path
from typing import BinaryIO, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"KIDNEYWEB-AES1\n\0"  # 16 bytes: names the format of every sealed file
CHUNK = 1 << 20
TAG = 16
PREFIX = 7  # random bytes; with a 4-byte counter and the last-chunk flag, GCM's 12-byte nonce
SUFFIX = ".aes"


class SealError(Exception):
    """A key or sealed file that cannot be used; the message says why, for an administrator."""


def generate_key() -> str:
    """A new random key, as text to keep in a secret store and in ``KIDNEYWEB_BACKUP_KEY``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def parse_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise SealError("KIDNEYWEB_BACKUP_KEY is not a backup key: make one with `manage.py backup --generate-key` "
                        "(44 characters of URL-safe base64).")
    return key


def key_id(key: bytes) -> str:
    """A short fingerprint that names a key in a backup's manifest without revealing it."""
    return hashlib.sha256(b"kidneyweb backup key\0" + key).hexdigest()[:16]


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= 1 << 32:
        raise SealError("A sealed file is limited to 4 PiB.")
    return prefix + struct.pack(">I?", counter, last)


class SealingWriter:
    """A write-only binary file that seals what it is given into ``target``; ``close`` seals the last chunk.

    Usable wherever a file object is written to: under ``gzip.GzipFile`` or a streaming ``tarfile``.
    """

    def __init__(self, target: BinaryIO, *, key: bytes, name: str) -> None:
        self._target, self._aead, self._name = target, AESGCM(key), name.encode("utf-8")
        self._prefix = os.urandom(PREFIX)
        self._header = MAGIC + self._prefix
        self._target.write(self._header)
        self._pending = bytearray()
        self._counter = 0
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError("write to a closed sealed file")
        self._pending += data
        # Keep a full chunk back: only at close is it known which chunk is the last.
        while len(self._pending) > CHUNK:
            self._seal(bytes(self._pending[:CHUNK]), last=False)
            del self._pending[:CHUNK]
        return len(data)

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._pending), last=True)
            self._pending.clear()
            self._target.flush()
            self.closed = True

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        nonce = _nonce(self._prefix, self._counter, last)
        self._target.write(self._aead.encrypt(nonce, chunk, self._header + self._name))
        self._counter += 1

    def __enter__(self) -> SealingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unsealed_chunks(source: Path, *, key: bytes, name: str) -> Iterator[bytes]:
    """The plaintext of ``source``, one chunk at a time, each only once it authenticates; ``SealError`` when the
    key is wrong or the file was altered, cut short or made for another name (after the chunks before it)."""
    aead = AESGCM(key)
    with source.open("rb") as sealed:
        header = sealed.read(len(MAGIC) + PREFIX)
        if len(header) != len(MAGIC) + PREFIX or not header.startswith(MAGIC):
            raise SealError(f"{source.name} is not a sealed backup file.")
        prefix, counter = header[len(MAGIC):], 0
        chunk = sealed.read(CHUNK + TAG)
        while True:
            following = sealed.read(CHUNK + TAG)
            last = not following
            try:
                yield aead.decrypt(_nonce(prefix, counter, last), chunk, header + name.encode("utf-8"))
            except InvalidTag:
                raise SealError(f"{source.name} fails its authentication: the key is not the one it was "
                                "sealed with, or the file was altered or cut short.") from None
            if last:
                break
            chunk, counter = following, counter + 1


def unseal_file(source: Path, target: Path, *, key: bytes, name: str) -> None:
    """Decrypt ``source`` into ``target``, or raise ``SealError`` (and leave no ``target``) when the key is
    wrong or the file was altered, cut short or made for another name."""
    try:
        with target.open("wb") as plain:
            for chunk in unsealed_chunks(source, key=key, name=name):
                plain.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
