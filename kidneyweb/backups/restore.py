"""Restoring a backup, into this deployment's database and storage."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Sequence

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.recorder import MigrationRecorder

from .common import (BackupError, BackupSummary, DATA, MEDIA, MLRUNS, MODELS, extract, key_for, local_media, named_files,
                     read_manifest, stored_name, table_counts, unsealed)


def backup_restore(*, folder: Path, replace: bool = False, keys: Sequence[bytes] = ()) -> BackupSummary:
    """Restore a backup into this deployment's database (migrated to at least the backup's migrations) and
    storage. Refused when the database holds users or patients, unless ``replace``: then they are deleted.
    An encrypted backup needs the key it was made with among ``keys`` (the current one and any earlier ones,
    so that backups made before a key was replaced still restore); it is decrypted into a private temporary folder
    (as much free space as the backup) first."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    key = key_for(manifest, keys) if manifest.get("encryption") else None
    applied = {f"{app}.{name}" for app, name in MigrationRecorder(connection).applied_migrations()}
    behind = sorted(set(manifest.get("migrations", [])) - applied)
    if behind:
        raise BackupError(f"The database lacks migrations the backup was made with ({', '.join(behind[:3])}"
                          f"{', ...' if len(behind) > 3 else ''}): run `manage.py migrate` with this version first.")
    present = table_counts()
    if (present["auth.User"] or present["diagnosis.Patient"]) and not replace:
        raise BackupError(
            f"The database already holds {present['auth.User']} user(s) and {present['diagnosis.Patient']} "
            "patient(s). Restore into an empty database, or replace what it holds (--replace).")
    media = local_media()
    has_media, has_models, has_mlruns = (stored_name(manifest, name) in manifest["files"]
                                         for name in (MEDIA, MODELS, MLRUNS))
    if has_media and media is None:
        raise BackupError("The backup holds scan files, but this deployment stores them in S3; restore it where "
                          "the storage is a folder, or copy media.tar's files into the bucket yourself.")
    from diagnosis import services

    # A patient erased since the backup was made must not come back with it: the erasures are carried over.
    erasures = services.erasures_noted() if replace else []
    with tempfile.TemporaryDirectory(prefix="kidneyweb-restore-") as scratch:
        source = unsealed(folder, manifest, key, Path(scratch)) if key is not None else folder
        with transaction.atomic():
            if replace:
                call_command("flush", interactive=False, verbosity=0)
            call_command("loaddata", str(source / DATA), verbosity=0)
            counts = table_counts()
            if counts != manifest["counts"]:
                raise BackupError(f"The restored database holds {counts}, the backup recorded {manifest['counts']}.")
            erased_again = services.erasures_reapply(notes=erasures)
        # The planner knows nothing of rows loaded this way until autovacuum gets to them, and meanwhile picks
        # plans for empty tables: a page over a few thousand results took 4 s instead of 0.1 s. Counted now.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        if media is not None and has_media:
            extract(source / MEDIA, media)
        if has_models:
            extract(source / MODELS, Path(settings.KIDNEYWEB_MODELS_DIR))
        if has_mlruns:
            mlruns = Path(settings.KIDNEYWEB_MLRUNS_DIR)
            if replace and mlruns.is_dir():
                shutil.rmtree(mlruns)  # the records of the trainings being replaced, which a merge would mislead
            extract(source / MLRUNS, mlruns)
    for erasure in erased_again:
        try:
            services.erasure_files_remove(erasure_id=erasure.pk)  # the backup's copies of their images, just extracted
        except OSError:
            pass  # the worker's sweep tries again (erasures_files_resend), and /metrics counts it meanwhile
    counts = table_counts()
    named = named_files()
    missing = tuple(name for name in named if media is not None and not (media / name).is_file())
    return BackupSummary(folder=folder, counts=counts, missing=missing, encrypted=bool(manifest.get("encryption")),
                         erased_again=tuple(erasure.patient_id for erasure in erased_again))
