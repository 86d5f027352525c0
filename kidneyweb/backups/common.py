"""What a backup is made of and how its files are read: names, the manifest, keys, sealing."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from django.apps import apps
from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage

from kidneyweb import backup_crypto
from kidneyweb.backup_crypto import SUFFIX, SealError, SealingWriter

FORMAT = 1
DATA = "data.json.gz"
MEDIA = "media.tar"
MODELS = "models.tar"
MLRUNS = "mlruns.tar"
# Rebuilt by `migrate`, or not worth keeping: logins end with a restore.
EXCLUDED = ["contenttypes", "auth.permission", "sessions"]
# What a restore counts, to say what it brought back and to check it brought back all of it.
COUNTED = ["diagnosis.Organization", "auth.User", "diagnosis.Patient", "diagnosis.Scan", "diagnosis.Prediction",
           "diagnosis.Review", "diagnosis.ModelVersion", "diagnosis.PatientAccess"]


class BackupError(Exception):
    """A backup that cannot be made or restored; the message says why, for an administrator."""


@dataclass(frozen=True)
class BackupSummary:
    folder: Path
    counts: dict[str, int]
    files: dict[str, int] = field(default_factory=dict)  # archive name -> size in bytes
    missing: tuple[str, ...] = ()  # stored files the database names but the storage lacks
    encrypted: bool = False
    erased_again: tuple[int, ...] = ()  # former patient ids the backup held, erased after it was made


def configured_key() -> bytes | None:
    """The key in ``KIDNEYWEB_BACKUP_KEY``, None when unset; a malformed one is refused, never ignored."""
    if not settings.KIDNEYWEB_BACKUP_KEY:
        return None
    try:
        return backup_crypto.parse_key(settings.KIDNEYWEB_BACKUP_KEY)
    except SealError as exc:
        raise BackupError(str(exc)) from None


def configured_keys() -> list[bytes]:
    """Every key a restore may need: the current one, then those it replaced (``KIDNEYWEB_BACKUP_PREVIOUS_KEYS``)."""
    keys = [key] if (key := configured_key()) is not None else []
    for n, text in enumerate(settings.KIDNEYWEB_BACKUP_PREVIOUS_KEYS, start=1):
        try:
            keys.append(backup_crypto.parse_key(text))
        except SealError:
            raise BackupError(f"Entry {n} of KIDNEYWEB_BACKUP_PREVIOUS_KEYS is not a backup key (44 characters of "
                              "URL-safe base64, as `manage.py backup --generate-key` prints).") from None
    return keys


def table_counts() -> dict[str, int]:
    return {label: apps.get_model(label).objects.count() for label in COUNTED}


def plain_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(backup_crypto.CHUNK), b"")


def encryption_entry(key: bytes) -> dict[str, str]:
    """The manifest's account of how its files are sealed."""
    return {"cipher": "AES-256-GCM in 1 MiB chunks", "key_id": backup_crypto.key_id(key), "suffix": SUFFIX}


def listed_files(folder: Path) -> dict[str, dict]:
    """The manifest's entry of each file in the folder (written before the manifest is): its size and SHA-256."""
    return {path.name: {"bytes": path.stat().st_size, "sha256": _sha256(path)} for path in sorted(folder.iterdir())}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for block in plain_chunks(path):
        digest.update(block)
    return digest.hexdigest()


def named_files() -> list[str]:
    """Every stored file a row names: scan images, heat maps, other classes' heat maps."""
    names: list[str] = []
    for label, fields in (("diagnosis.Scan", ["image"]), ("diagnosis.Prediction", ["heatmap"]),
                          ("diagnosis.ClassHeatmap", ["image"])):
        for values in apps.get_model(label).objects.values_list(*fields):
            names += [name for name in values if name]
    return names


def local_media() -> Path | None:
    return Path(default_storage.location) if isinstance(default_storage, FileSystemStorage) else None


@contextmanager
def written_file(folder: Path, name: str, key: bytes | None) -> Iterator[BinaryIO]:
    """A file of the backup to write into: sealed as it is written when there is a key."""
    with (folder / (name + SUFFIX if key else name)).open("wb") as handle:
        if key is None:
            yield handle
        else:
            with SealingWriter(handle, key=key, name=name) as sealed:
                yield sealed  # type: ignore[misc]


def tar_into(source: Path, target: BinaryIO) -> None:
    # Uncompressed: PNG and JPEG slices and Keras files are compressed already. A stream ("w|") never seeks,
    # so it can be sealed as it is written.
    with tarfile.open(fileobj=target, mode="w|") as archive, tempfile.TemporaryDirectory() as scratch:
        for path in sorted(source.rglob("*")):
            if not path.is_file() or path.name.endswith(("-journal", "-wal", "-shm")):
                continue
            if path.suffix == ".db":
                # MLflow's SQLite store may be written by a training meanwhile: its own backup gives one
                # consistent copy, which a file copy would not.
                copy = Path(scratch) / path.name
                with sqlite3.connect(path) as live, sqlite3.connect(copy) as snapshot:
                    live.backup(snapshot)
                archive.add(copy, arcname=str(path.relative_to(source)), recursive=False)
                copy.unlink()
            else:
                archive.add(path, arcname=str(path.relative_to(source)), recursive=False)


def mlruns_folder() -> tuple[Path | None, str]:
    """MLflow's records to copy, and what the manifest says of them."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri and not uri.startswith("sqlite:"):
        return None, f"not included: MLflow's tracking server ({uri.split('@')[-1]}) keeps the training records"
    folder = Path(settings.KIDNEYWEB_MLRUNS_DIR)
    if uri and not Path(uri.removeprefix("sqlite:///")).resolve().is_relative_to(folder.resolve()):
        return None, f"not included: MLflow's database is outside {folder} (MLFLOW_TRACKING_URI); back it up there"
    if not folder.is_dir():
        return None, "none yet: no training has been recorded"
    return folder, "included"


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError:
        raise BackupError(f"{folder} holds no manifest.json: it is not a kidneyweb backup.") from None
    except ValueError as exc:
        raise BackupError(f"The backup's manifest.json cannot be read ({exc}).") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"The backup is of format {manifest.get('format')!r}; this version reads format {FORMAT}.")
    for name, expected in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise BackupError(f"The backup lacks {name}: it is incomplete.")
        if _sha256(path) != expected["sha256"]:
            raise BackupError(f"{name} differs from the checksum the backup recorded: it is damaged.")
    if stored_name(manifest, DATA) not in manifest.get("files", {}):
        raise BackupError(f"The backup lacks {stored_name(manifest, DATA)}: it is incomplete.")
    return manifest


def stored_name(manifest: dict, name: str) -> str:
    return name + manifest["encryption"]["suffix"] if manifest.get("encryption") else name


def key_for(manifest: dict, keys: Sequence[bytes]) -> bytes:
    """The key among ``keys`` that the backup was encrypted with (keys are matched by fingerprint)."""
    wanted = manifest["encryption"]["key_id"]
    if not keys:
        raise BackupError(f"The backup is encrypted (key id {wanted}): set KIDNEYWEB_BACKUP_KEY to the key it "
                          "was made with.")
    for key in keys:
        if backup_crypto.key_id(key) == wanted:
            return key
    held = ", ".join(backup_crypto.key_id(key) for key in keys)
    raise BackupError(f"The backup is encrypted with another key (key id {wanted}; the keys configured have key "
                      f"id {held}): set KIDNEYWEB_BACKUP_KEY, or add to KIDNEYWEB_BACKUP_PREVIOUS_KEYS, the key the "
                      "backup was made with.")


def unsealed(folder: Path, manifest: dict, key: bytes, into: Path) -> Path:
    """Decrypt every file of an encrypted backup into ``into``: all of them authenticate before anything
    is restored, so a wrong key or an altered file changes nothing."""
    suffix = manifest["encryption"]["suffix"]
    for stored in manifest["files"]:
        name = stored.removesuffix(suffix)
        try:
            backup_crypto.unseal_file(folder / stored, into / name, key=key, name=name)
        except SealError as exc:
            raise BackupError(str(exc)) from None
    return into


def extract(archive_path: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path) as archive:
        # The "data" filter refuses absolute names, ../ and links out of the target.
        archive.extractall(target, filter="data")
