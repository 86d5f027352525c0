from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from diagnosis import services
from diagnosis.models import Organization


class Command(BaseCommand):
    help = (
        "Export an organization's reviewed scans (the current reviewed label wins) into class folders "
        "with a manifest.csv that `mlcore` reads as extra training data; prints the manifest's path last."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization", help="Organization name or slug.")
        parser.add_argument("out_dir", type=Path, help="Empty folder, or the folder of an earlier export to replace.")

    def handle(self, *args, organization: str, out_dir: Path, **options) -> None:
        org = Organization.objects.filter(Q(name=organization) | Q(slug=organization)).first()
        if org is None:
            raise CommandError(f"No organization named {organization!r}.")
        try:
            manifest = services.reviewed_scans_export(organization=org, out_dir=out_dir)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        with manifest.open() as handle:
            count = sum(1 for _ in handle) - 1
        self.stderr.write(f"Exported {count} reviewed scan(s) of {org.name!r}.")
        self.stdout.write(str(manifest))
