from pathlib import Path
from typing import Iterator

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from diagnosis import selectors, services

# Read and filed this many at a time: a folder of a few thousand slices is never held in memory at once.
BATCH = 50


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


class Command(BaseCommand):
    help = (
        "File DICOM instances from files or folders (searched through, e.g. an exported study or a CD) as the "
        "DICOMweb store does: each for the patient whose MRN its header's patient ID names, diagnosed like any "
        "upload, recorded as uploaded by USERNAME. Prints one line per file; fails when any was refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The member the scans are recorded as uploaded by.")
        parser.add_argument("paths", nargs="+", type=Path, help="DICOM files, or folders holding them.")

    def handle(self, *args, username: str, paths: list[Path], **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None or selectors.membership_of(user) is None:
            raise CommandError(f"No member named {username!r}: the scans need an uploader of the organization.")
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise CommandError(f"No such file or folder: {', '.join(missing)}.")
        counts = {"stored": 0, "already stored": 0, "refused": 0, "skipped": 0}
        batch: list[Path] = []
        for path in _files(paths):
            if path.name.upper() == "DICOMDIR":
                counts["skipped"] += 1  # a CD's index of its files, not an image
                continue
            batch.append(path)
            if len(batch) == BATCH:
                self._file(batch, user, counts)
                batch = []
        if batch:
            self._file(batch, user, counts)
        self.stderr.write(", ".join(f"{n} {what}" for what, n in counts.items()) + ".")
        if counts["refused"]:
            raise CommandError(f"{counts['refused']} file(s) refused; the others were filed. Fix the cause (e.g. "
                               "register the patient) and import the same paths again: filed ones are not doubled.")

    def _file(self, batch: list[Path], user, counts: dict[str, int]) -> None:
        try:
            outcomes = services.dicom_instances_store(instances=[("", path.read_bytes()) for path in batch],
                                                      uploaded_by=user)
        except services.NoActiveModelVersion as exc:
            raise CommandError(f"{exc} Import again once one is.") from None
        for path, outcome in zip(batch, outcomes):
            if outcome.scan is None:
                counts["refused"] += 1
                self.stdout.write(f"{path}: refused: {outcome.failure}")
            else:
                counts["already stored" if outcome.already_stored else "stored"] += 1
                state = "already stored as" if outcome.already_stored else "stored as"
                self.stdout.write(f"{path}: {state} scan {outcome.scan.pk} of patient {outcome.scan.patient.mrn}")
