from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from diagnosis import services


class Command(BaseCommand):
    help = "Register a .keras model (its card must lie next to it) as a model version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="The .keras file.")
        parser.add_argument("--name", help="Version name (default: the card's name, or the file name).")
        parser.add_argument("--activate", action="store_true", help="Make it the active version.")

    def handle(self, *args, path: Path, name: str | None, activate: bool, **options) -> None:
        try:
            version = services.model_version_register(path=path, name=name, activate=activate)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        state = "active" if version.is_active else "not active"
        self.stdout.write(f"Model version {version.name} ({version.sha256[:12]}, {state}): {version.path}")
