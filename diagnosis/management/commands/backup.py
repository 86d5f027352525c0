import sys
import tarfile
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kidneyweb import backup_crypto
from kidneyweb.backups import (BackupError, backup_create, backup_reseal, backups_prune, configured_key,
                               configured_keys)


class Command(BaseCommand):
    help = (
        "Back up the database, the stored scans and heat maps, and the trained models into a new folder under "
        "OUT_DIR (kidneyweb-backup-<time>) and print its path; with '-' instead, write that folder as a tar "
        "stream to standard output (e.g. out of a container). It holds patient data and secrets: with "
        "KIDNEYWEB_BACKUP_KEY set, every file but the manifest is encrypted (AES-256-GCM). --reseal encrypts "
        "existing backups with the current key instead, so that a replaced key can be retired."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("out_dir", nargs="?",
                            help="Where the backup's folder is made, or '-' for a tar on standard output.")
        parser.add_argument("--generate-key", action="store_true",
                            help="Print a new key for KIDNEYWEB_BACKUP_KEY and make no backup.")
        parser.add_argument("--keep-days", type=int, metavar="DAYS",
                            help="After the backup, delete the backups under OUT_DIR made more than DAYS days ago "
                                 "(by their manifest), so that none is kept longer than retention rules allow.")
        parser.add_argument("--reseal", nargs="+", metavar="BACKUP", type=Path,
                            help="Encrypt these backup folders with KIDNEYWEB_BACKUP_KEY in place (those made with a "
                                 "key in KIDNEYWEB_BACKUP_PREVIOUS_KEYS, or without a key) and make no new backup.")

    def handle(self, *args, out_dir: str | None, generate_key: bool, reseal: list[Path] | None,
               keep_days: int | None, **options) -> None:
        if reseal:
            self._reseal(reseal)
            return
        if generate_key:
            self.stdout.write(backup_crypto.generate_key())
            self.stderr.write("Set KIDNEYWEB_BACKUP_KEY to it wherever backups are made or restored, and keep a copy "
                              "apart from the backups: without it they cannot be read.")
            return
        if out_dir is None:
            raise CommandError("Give the folder to back up into, or '-' for a tar on standard output.")
        if keep_days is not None and (out_dir == "-" or keep_days < 1):
            raise CommandError("--keep-days needs a folder to back up into and at least one day; nothing was done.")
        if out_dir != "-":
            summary = self._backup(Path(out_dir))
            if keep_days is not None:
                self._prune(Path(out_dir), keep_days, keep=summary.folder)
            self.stdout.write(str(summary.folder))
            return
        if sys.stdout.isatty():
            raise CommandError("Standard output is a terminal: redirect it to a file (> backup.tar).")
        with tempfile.TemporaryDirectory(prefix="kidneyweb-backup-") as scratch:
            summary = self._backup(Path(scratch))
            with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as stream:
                stream.add(summary.folder, arcname=summary.folder.name)
            sys.stdout.buffer.flush()

    def _prune(self, out_dir: Path, keep_days: int, *, keep: Path) -> None:
        pruned = backups_prune(out_dir=out_dir, keep_days=keep_days, keep=keep)
        for folder in pruned.deleted:
            self.stderr.write(f"Deleted {folder.name}: older than {keep_days} days.")
        for folder in pruned.kept_unreadable:
            self.stderr.write(self.style.WARNING(f"Left {folder.name} alone: its manifest does not say when it was made."))

    def _reseal(self, folders: list[Path]) -> None:
        try:
            key, keys = configured_key(), configured_keys()
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        if key is None:
            raise CommandError("KIDNEYWEB_BACKUP_KEY is not set: set it to the key the backups should be encrypted "
                               "with, and the key(s) they were made with in KIDNEYWEB_BACKUP_PREVIOUS_KEYS.")
        failed = []
        for folder in folders:
            try:
                changed = backup_reseal(folder=folder, key=key, keys=keys)
            except BackupError as exc:
                # One backup that cannot be read does not stop the others; the command fails at the end.
                failed.append(folder)
                self.stderr.write(self.style.ERROR(f"{folder}: {exc}"))
                continue
            self.stdout.write(f"{folder}: {'resealed' if changed else 'already encrypted with this key'}")
        if failed:
            raise CommandError(f"{len(failed)} of {len(folders)} backup(s) not resealed; they are unchanged.")
        self.stderr.write(f"Every backup named is now encrypted with key id {backup_crypto.key_id(key)}. A key no "
                          "backup you keep needs can leave KIDNEYWEB_BACKUP_PREVIOUS_KEYS.")

    def _backup(self, out_dir: Path):
        try:
            summary = backup_create(out_dir=out_dir, key=configured_key())
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        counts = ", ".join(f"{n} {label.split('.')[-1]}" for label, n in summary.counts.items())
        self.stderr.write(f"Backed up {counts}; files: " + ", ".join(
            f"{name} ({size / 1e6:.1f} MB)" for name, size in summary.files.items()))
        if summary.missing:
            self.stderr.write(self.style.WARNING(
                f"{len(summary.missing)} stored file(s) the database names were missing already, e.g. "
                f"{summary.missing[0]}; they are listed in manifest.json."))
        if not summary.encrypted:
            self.stderr.write(self.style.WARNING(
                "Not encrypted: KIDNEYWEB_BACKUP_KEY is not set. Keep this backup where the database is kept, or "
                "make a key (--generate-key) and back up again."))
        return summary
