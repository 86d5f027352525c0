from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from diagnosis import selectors, services
from diagnosis.models import Organization, Patient


class Command(BaseCommand):
    help = (
        "Erase patient records for good, as the patient's page does, for many at once: the end of a pilot (--all) or "
        "a list of withdrawn consents (--mrn, repeated). Records merged into another go with it. Without --yes it "
        "only says what it would erase. The images are deleted as each record is erased."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization", help="Organization name or slug.")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--mrn", action="append", help="A record's MRN; repeat for more.")
        which.add_argument("--all", action="store_true", help="Every record of the organization.")
        parser.add_argument("--by", required=True, help="Username of the organization's administrator erasing them.")
        parser.add_argument("--reason", required=True,
                            help='Kept with each erasure; do not name a patient, e.g. "end of the pilot on 2026-12-31".')
        parser.add_argument("--yes", action="store_true", help="Erase; without it nothing changes.")

    def handle(self, *args, organization: str, mrn: list[str] | None, all: bool, by: str, reason: str, yes: bool,
               **options) -> None:
        org = Organization.objects.filter(Q(name=organization) | Q(slug=organization)).first()
        if org is None:
            raise CommandError(f"No organization named {organization!r}.")
        user = get_user_model().objects.filter(username=by).first()
        if user is None:
            raise CommandError(f"No user {by!r}.")
        records = Patient.objects.filter(organization=org, merged_into__isnull=True).order_by("pk")
        if not all:
            wanted = {value.strip() for value in mrn}
            unknown = wanted - set(Patient.objects.filter(organization=org, mrn__in=wanted).values_list("mrn", flat=True))
            if unknown:
                raise CommandError(f"No record with MRN {', '.join(sorted(unknown))} in {org.name}; nothing was erased.")
            merged = [p.mrn for p in Patient.objects.filter(organization=org, mrn__in=wanted, merged_into__isnull=False)]
            if merged:
                raise CommandError(f"MRN {', '.join(sorted(merged))} were merged into other records: name those; "
                                   "nothing was erased.")
            records = records.filter(mrn__in=wanted)
        records = list(records)
        if not yes:
            scans = sum(selectors.patient_erasure_preview(patient=record).scans for record in records)
            self.stdout.write(f"Would erase {len(records)} record(s) of {org.name} with {scans} scan(s). "
                              "Run again with --yes to erase them.")
            return
        erased = 0
        for record in records:
            try:
                erasure = services.patient_erase(patient=record, user=user, reason=reason, confirm_mrn=record.mrn)
            except PermissionDenied as exc:
                raise CommandError(f"{exc} ({by} is not an administrator of {org.name}); {erased} erased.") from None
            except ValidationError as exc:
                self.stderr.write(self.style.WARNING(f"Record {record.pk} not erased: {'; '.join(exc.messages)}"))
                continue
            # At once, rather than waiting for the worker: the command's caller expects the images gone when it ends.
            services.erasure_files_remove(erasure_id=erasure.pk)
            erased += 1
        self.stdout.write(self.style.SUCCESS(f"Erased {erased} record(s) of {org.name}."))
