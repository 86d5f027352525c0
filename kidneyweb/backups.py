"""Backups of a deployment: its database, its stored scans and heat maps, the models it trained, and MLflow's
records of the trainings (where MLflow keeps them locally).

The database is written with Django's own serialisation, not a database tool: a backup restores into
SQLite or PostgreSQL of any version (a pilot that began on SQLite moves to PostgreSQL this way), and ids
are kept, so the scan ids hospital systems hold still name the same scans. It reads one snapshot of the
database (REPEATABLE READ on PostgreSQL; SQLite's transaction holds writers back for its few seconds).
Files are copied after it: a scan uploaded meanwhile adds a file the database does not name, never the
reverse, since stored files are not deleted.

A backup holds patient data, password hashes, API token digests and sealed credentials: its folder and files are
readable by their owner only, and given a key (``KIDNEYWEB_BACKUP_KEY``) every file but the manifest is
encrypted as it is written (``backup_crypto``). The manifest holds counts, checksums of the files as stored,
migrations and the stored files' generated names, nothing about a patient, so a damaged backup is recognised
without the key.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import os
import shutil
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
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

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


def _counts() -> dict[str, int]:
    return {label: apps.get_model(label).objects.count() for label in COUNTED}


def _plain_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(backup_crypto.CHUNK), b"")


def _encryption(key: bytes) -> dict[str, str]:
    """The manifest's account of how its files are sealed."""
    return {"cipher": "AES-256-GCM in 1 MiB chunks", "key_id": backup_crypto.key_id(key), "suffix": SUFFIX}


def _listed(folder: Path) -> dict[str, dict]:
    """The manifest's entry of each file in the folder (written before the manifest is): its size and SHA-256."""
    return {path.name: {"bytes": path.stat().st_size, "sha256": _sha256(path)} for path in sorted(folder.iterdir())}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for block in _plain_chunks(path):
        digest.update(block)
    return digest.hexdigest()


def _named_files() -> list[str]:
    """Every stored file a row names: scan images, heat maps, other classes' heat maps."""
    names: list[str] = []
    for label, fields in (("diagnosis.Scan", ["image"]), ("diagnosis.Prediction", ["heatmap"]),
                          ("diagnosis.ClassHeatmap", ["image"])):
        for values in apps.get_model(label).objects.values_list(*fields):
            names += [name for name in values if name]
    return names


def _local_media() -> Path | None:
    return Path(default_storage.location) if isinstance(default_storage, FileSystemStorage) else None


@contextmanager
def _written(folder: Path, name: str, key: bytes | None) -> Iterator[BinaryIO]:
    """A file of the backup to write into: sealed as it is written when there is a key."""
    with (folder / (name + SUFFIX if key else name)).open("wb") as handle:
        if key is None:
            yield handle
        else:
            with SealingWriter(handle, key=key, name=name) as sealed:
                yield sealed  # type: ignore[misc]


def _tar(source: Path, target: BinaryIO) -> None:
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


def _mlruns() -> tuple[Path | None, str]:
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


def backup_create(*, out_dir: Path, key: bytes | None = None) -> BackupSummary:
    """Write a backup into a new folder under ``out_dir`` and return what it holds; with ``key`` (32 bytes,
    ``backup_crypto.parse_key``) every file but the manifest is encrypted."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(out_dir) / f"kidneyweb-backup-{stamp}"
    try:
        folder.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        raise BackupError(f"{folder} exists already; wait a second or choose another folder.") from None
    old_umask = os.umask(0o077)
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # One snapshot for every table, however long the dump takes.
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            counts = _counts()
            named = _named_files()
            migrations = sorted(MigrationRecorder(connection).applied_migrations())
            with _written(folder, DATA, key) as target, gzip.open(target, "wt", encoding="utf-8") as handle:
                call_command("dumpdata", exclude=EXCLUDED, natural_foreign=True, stdout=handle, verbosity=0)
        media = _local_media()
        missing: tuple[str, ...] = ()
        if media is not None:
            missing = tuple(name for name in named if not (media / name).is_file())
            with _written(folder, MEDIA, key) as target:
                _tar(media, target)
        models_dir = Path(settings.KIDNEYWEB_MODELS_DIR)
        if models_dir.is_dir():
            with _written(folder, MODELS, key) as target:
                _tar(models_dir, target)
        mlruns, mlflow_note = _mlruns()
        if mlruns is not None:
            with _written(folder, MLRUNS, key) as target:
                _tar(mlruns, target)
        manifest = {
            "format": FORMAT,
            "created": timezone.now().isoformat(),
            "database": connection.vendor,
            "media": "included" if media is not None else
                     f"not included: the scans are in the S3 bucket {settings.AWS_STORAGE_BUCKET_NAME!r}; "
                     "keep them with the bucket's versioning or replication",
            "mlflow": mlflow_note,
            "encryption": _encryption(key) if key else None,
            "counts": counts,
            "files": _listed(folder),
            "missing_files": list(missing),
            "migrations": [f"{app}.{name}" for app, name in migrations],
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    finally:
        os.umask(old_umask)
    return BackupSummary(folder=folder, counts=counts,
                         files={name: entry["bytes"] for name, entry in manifest["files"].items()},
                         missing=missing, encrypted=key is not None)


def _manifest(folder: Path) -> dict:
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
    if _stored_name(manifest, DATA) not in manifest.get("files", {}):
        raise BackupError(f"The backup lacks {_stored_name(manifest, DATA)}: it is incomplete.")
    return manifest


def _stored_name(manifest: dict, name: str) -> str:
    return name + manifest["encryption"]["suffix"] if manifest.get("encryption") else name


def _key_for(manifest: dict, keys: Sequence[bytes]) -> bytes:
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


def _unsealed(folder: Path, manifest: dict, key: bytes, into: Path) -> Path:
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


def _extract(archive_path: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path) as archive:
        # The "data" filter refuses absolute names, ../ and links out of the target.
        archive.extractall(target, filter="data")


def backup_restore(*, folder: Path, replace: bool = False, keys: Sequence[bytes] = ()) -> BackupSummary:
    """Restore a backup into this deployment's database (migrated to at least the backup's migrations) and
    storage. Refused when the database holds users or patients, unless ``replace``: then they are deleted.
    An encrypted backup needs the key it was made with among ``keys`` (the current one and any earlier ones,
    so that backups made before a key was replaced still restore); it is decrypted into a private temporary folder
    (as much free space as the backup) first."""
    folder = Path(folder)
    manifest = _manifest(folder)
    key = _key_for(manifest, keys) if manifest.get("encryption") else None
    applied = {f"{app}.{name}" for app, name in MigrationRecorder(connection).applied_migrations()}
    behind = sorted(set(manifest.get("migrations", [])) - applied)
    if behind:
        raise BackupError(f"The database lacks migrations the backup was made with ({', '.join(behind[:3])}"
                          f"{', ...' if len(behind) > 3 else ''}): run `manage.py migrate` with this version first.")
    present = _counts()
    if (present["auth.User"] or present["diagnosis.Patient"]) and not replace:
        raise BackupError(
            f"The database already holds {present['auth.User']} user(s) and {present['diagnosis.Patient']} "
            "patient(s). Restore into an empty database, or replace what it holds (--replace).")
    media = _local_media()
    has_media, has_models, has_mlruns = (_stored_name(manifest, name) in manifest["files"]
                                         for name in (MEDIA, MODELS, MLRUNS))
    if has_media and media is None:
        raise BackupError("The backup holds scan files, but this deployment stores them in S3; restore it where "
                          "the storage is a folder, or copy media.tar's files into the bucket yourself.")
    from diagnosis import services

    # A patient erased since the backup was made must not come back with it: the erasures are carried over.
    erasures = services.erasures_noted() if replace else []
    with tempfile.TemporaryDirectory(prefix="kidneyweb-restore-") as scratch:
        source = _unsealed(folder, manifest, key, Path(scratch)) if key is not None else folder
        with transaction.atomic():
            if replace:
                call_command("flush", interactive=False, verbosity=0)
            call_command("loaddata", str(source / DATA), verbosity=0)
            counts = _counts()
            if counts != manifest["counts"]:
                raise BackupError(f"The restored database holds {counts}, the backup recorded {manifest['counts']}.")
            erased_again = services.erasures_reapply(notes=erasures)
        # The planner knows nothing of rows loaded this way until autovacuum gets to them, and meanwhile picks
        # plans for empty tables: a page over a few thousand results took 4 s instead of 0.1 s. Counted now.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        if media is not None and has_media:
            _extract(source / MEDIA, media)
        if has_models:
            _extract(source / MODELS, Path(settings.KIDNEYWEB_MODELS_DIR))
        if has_mlruns:
            mlruns = Path(settings.KIDNEYWEB_MLRUNS_DIR)
            if replace and mlruns.is_dir():
                shutil.rmtree(mlruns)  # the records of the trainings being replaced, which a merge would mislead
            _extract(source / MLRUNS, mlruns)
    for erasure in erased_again:
        try:
            services.erasure_files_remove(erasure_id=erasure.pk)  # the backup's copies of their images, just extracted
        except OSError:
            pass  # the worker's sweep tries again (erasures_files_resend), and /metrics counts it meanwhile
    counts = _counts()
    named = _named_files()
    missing = tuple(name for name in named if media is not None and not (media / name).is_file())
    return BackupSummary(folder=folder, counts=counts, missing=missing, encrypted=bool(manifest.get("encryption")),
                         erased_again=tuple(erasure.patient_id for erasure in erased_again))


@dataclass(frozen=True)
class Pruned:
    deleted: tuple[Path, ...]  # backups older than the retention, deleted
    kept_unreadable: tuple[Path, ...]  # folders named like backups whose manifest says no age: left alone


def backups_prune(*, out_dir: Path, keep_days: int, keep: Path, now=None) -> Pruned:
    """Delete the backups under ``out_dir`` made more than ``keep_days`` days before ``now`` (by their manifest's
    creation time), never ``keep`` (the one just made). A backup holds patient data, erased patients' included, so
    it is kept no longer than the hospital's retention rules allow. A folder named like a backup whose manifest
    cannot be read is left where it is and reported: deleting what one cannot identify is not this command's call."""
    if keep_days < 1:
        raise BackupError("Keep backups for at least one day.")
    cutoff = (now or timezone.now()) - datetime.timedelta(days=keep_days)
    deleted, unreadable = [], []
    for folder in sorted(Path(out_dir).glob("kidneyweb-backup-*")):
        if not folder.is_dir() or folder.resolve() == Path(keep).resolve():
            continue
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            created = datetime.datetime.fromisoformat(manifest["created"])
            if manifest.get("format") != FORMAT:
                raise ValueError(manifest.get("format"))
        except (OSError, ValueError, KeyError, TypeError):
            unreadable.append(folder)
            continue
        if created < cutoff:
            shutil.rmtree(folder)
            deleted.append(folder)
    return Pruned(deleted=tuple(deleted), kept_unreadable=tuple(unreadable))


def backup_reseal(*, folder: Path, key: bytes, keys: Sequence[bytes] = ()) -> bool:
    """Encrypt a backup with ``key`` in place: one made with an earlier key (found among ``keys``), or one made
    without a key. False, and nothing changed, when it is encrypted with ``key`` already.

    So that a key can be retired once every backup it sealed is resealed, rather than kept for as long as any of
    them is. Every file is decrypted chunk by chunk straight into its new sealed copy (no plaintext is written),
    in a private folder beside the backup; only when all of them are written is the backup swapped for it (two
    renames), so an interruption before then leaves the backup as it was. The manifest keeps its counts and
    creation time and says when the backup was resealed."""
    folder = Path(folder)
    manifest = _manifest(folder)
    encryption = manifest.get("encryption")
    if encryption and encryption["key_id"] == backup_crypto.key_id(key):
        return False
    old_key = _key_for(manifest, keys) if encryption else None
    old_suffix = encryption["suffix"] if encryption else ""
    staging = folder.with_name(f".{folder.name}.resealing")
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted reseal: the backup itself is intact
    old_umask = os.umask(0o077)
    try:
        staging.mkdir(mode=0o700)
        for stored in manifest["files"]:
            name = stored.removesuffix(old_suffix) if old_suffix else stored
            chunks = (backup_crypto.unsealed_chunks(folder / stored, key=old_key, name=name) if old_key is not None
                      else _plain_chunks(folder / stored))
            with (staging / (name + SUFFIX)).open("wb") as handle, SealingWriter(handle, key=key, name=name) as sealed:
                for chunk in chunks:
                    sealed.write(chunk)
        resealed = {**manifest, "encryption": _encryption(key), "files": _listed(staging),
                    "resealed": timezone.now().isoformat()}
        (staging / "manifest.json").write_text(json.dumps(resealed, indent=2))
        retired = folder.with_name(f".{folder.name}.retired")
        shutil.rmtree(retired, ignore_errors=True)
        folder.rename(retired)
        staging.rename(folder)
        shutil.rmtree(retired)
    except SealError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BackupError(str(exc)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.umask(old_umask)
    return True
