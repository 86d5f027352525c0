import sys
import tarfile
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kidneyweb.backups import BackupError, backup_restore, configured_keys


class Command(BaseCommand):
    help = (
        "Restore a backup made by `backup` into this deployment (run `migrate` first): its folder, or '-' to read "
        "it as a tar stream from standard input. Refused when the database holds users or patients, unless "
        "--replace, which deletes them first. An encrypted backup needs the key it was made with, in "
        "KIDNEYWEB_BACKUP_KEY or, after the key was replaced, in KIDNEYWEB_BACKUP_PREVIOUS_KEYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", help="The backup's folder (kidneyweb-backup-<time>), or '-' for a tar on "
                                           "standard input.")
        parser.add_argument("--replace", action="store_true",
                            help="Delete what the database holds and put the backup in its place.")

    def handle(self, *args, folder: str, replace: bool, **options) -> None:
        if folder != "-":
            self._restore(Path(folder), replace)
            return
        with tempfile.TemporaryDirectory(prefix="kidneyweb-restore-") as scratch:
            try:
                with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as stream:
                    stream.extractall(scratch, filter="data")
            except tarfile.TarError as exc:
                raise CommandError(f"Standard input is not a backup's tar stream ({exc}).") from None
            found = [path for path in Path(scratch).iterdir() if path.is_dir()]
            if len(found) != 1:
                raise CommandError("The tar stream holds no single backup folder.")
            self._restore(found[0], replace)

    def _restore(self, folder: Path, replace: bool) -> None:
        try:
            summary = backup_restore(folder=folder, replace=replace, keys=configured_keys())
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        counts = ", ".join(f"{n} {label.split('.')[-1]}" for label, n in summary.counts.items())
        self.stderr.write(f"Restored {counts} from {summary.folder.name}.")
        if summary.erased_again:
            self.stderr.write(self.style.WARNING(
                f"{len(summary.erased_again)} patient record(s) erased after the backup was made were erased again "
                f"(former ids {', '.join(map(str, summary.erased_again))})."))
        if summary.missing:
            self.stderr.write(self.style.WARNING(f"{len(summary.missing)} stored file(s) are missing, e.g. "
                                                 f"{summary.missing[0]}."))
