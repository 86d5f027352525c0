from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from diagnosis import services
from diagnosis.models import Membership


class Command(BaseCommand):
    help = (
        "Create (or reuse) an organization, a user in it and the membership, and print a NEW API token "
        "as the last line. Any earlier token of the user stops working."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization", help="Organization (hospital) name; created if missing.")
        parser.add_argument("username", help="Username of the API client; created if missing.")
        parser.add_argument("--role", choices=Membership.Role.values, default=Membership.Role.CLINICIAN)

    def handle(self, *args, organization: str, username: str, role: str, **options) -> None:
        try:
            # All or nothing: a refused username must not leave a new organization behind.
            with transaction.atomic():
                org, org_created = services.organization_get_or_create(name=organization)
                user, user_created = services.member_get_or_create(organization=org, username=username, role=role)
                token = services.api_token_rotate(user=user)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(
            f"Organization {org.name!r} {'created' if org_created else 'reused'}; "
            f"user {username!r} {'created' if user_created else 'reused'} ({role}). Old tokens revoked."
        )
        # The token alone on the last line of stdout, so scripts can take it with `tail -n1`.
        self.stdout.write(token)
