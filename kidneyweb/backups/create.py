"""Making a backup."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from .common import (BackupError, BackupSummary, DATA, EXCLUDED, FORMAT, MEDIA, MLRUNS, MODELS, encryption_entry,
                     listed_files, local_media, mlruns_folder, named_files, table_counts, tar_into,
                     written_file)


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
            counts = table_counts()
            named = named_files()
            migrations = sorted(MigrationRecorder(connection).applied_migrations())
            with written_file(folder, DATA, key) as target, gzip.open(target, "wt", encoding="utf-8") as handle:
                call_command("dumpdata", exclude=EXCLUDED, natural_foreign=True, stdout=handle, verbosity=0)
        media = local_media()
        missing: tuple[str, ...] = ()
        if media is not None:
            missing = tuple(name for name in named if not (media / name).is_file())
            with written_file(folder, MEDIA, key) as target:
                tar_into(media, target)
        models_dir = Path(settings.KIDNEYWEB_MODELS_DIR)
        if models_dir.is_dir():
            with written_file(folder, MODELS, key) as target:
                tar_into(models_dir, target)
        mlruns, mlflow_note = mlruns_folder()
        if mlruns is not None:
            with written_file(folder, MLRUNS, key) as target:
                tar_into(mlruns, target)
        manifest = {
            "format": FORMAT,
            "created": timezone.now().isoformat(),
            "database": connection.vendor,
            "media": "included" if media is not None else
                     f"not included: the scans are in the S3 bucket {settings.AWS_STORAGE_BUCKET_NAME!r}; "
                     "keep them with the bucket's versioning or replication",
            "mlflow": mlflow_note,
            "encryption": encryption_entry(key) if key else None,
            "counts": counts,
            "files": listed_files(folder),
            "missing_files": list(missing),
            "migrations": [f"{app}.{name}" for app, name in migrations],
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    finally:
        os.umask(old_umask)
    return BackupSummary(folder=folder, counts=counts,
                         files={name: entry["bytes"] for name, entry in manifest["files"].items()},
                         missing=missing, encrypted=key is not None)
