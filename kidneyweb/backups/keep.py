"""Keeping backups: deleting those past the retention, resealing those made with an earlier key."""

from __future__ import annotations

import datetime
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from django.utils import timezone

from kidneyweb import backup_crypto
from kidneyweb.backup_crypto import SUFFIX, SealError, SealingWriter
from .common import (BackupError, FORMAT, encryption_entry, key_for, listed_files, plain_chunks, read_manifest)


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
    manifest = read_manifest(folder)
    encryption = manifest.get("encryption")
    if encryption and encryption["key_id"] == backup_crypto.key_id(key):
        return False
    old_key = key_for(manifest, keys) if encryption else None
    old_suffix = encryption["suffix"] if encryption else ""
    staging = folder.with_name(f".{folder.name}.resealing")
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted reseal: the backup itself is intact
    old_umask = os.umask(0o077)
    try:
        staging.mkdir(mode=0o700)
        for stored in manifest["files"]:
            name = stored.removesuffix(old_suffix) if old_suffix else stored
            chunks = (backup_crypto.unsealed_chunks(folder / stored, key=old_key, name=name) if old_key is not None
                      else plain_chunks(folder / stored))
            with (staging / (name + SUFFIX)).open("wb") as handle, SealingWriter(handle, key=key, name=name) as sealed:
                for chunk in chunks:
                    sealed.write(chunk)
        resealed = {**manifest, "encryption": encryption_entry(key), "files": listed_files(staging),
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
