from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from diagnosis import services
from diagnosis.models import Membership


class Command(BaseCommand):
    help = (
        "Create an organization (if missing) and an administrator of it with a temporary password, printed "
        "once; they choose their own at their first login and add their colleagues under Members."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization", help="Organization (hospital) name; created if missing.")
        parser.add_argument("username", help="Username of the new administrator; must not exist yet.")
        parser.add_argument("--first-name", default="")
        parser.add_argument("--last-name", default="")
        parser.add_argument("--email", default="")

    def handle(self, *args, organization: str, username: str, first_name: str, last_name: str, email: str,
               **options) -> None:
        try:
            # All or nothing: a refused username must not leave a new organization behind.
            with transaction.atomic():
                org, created = services.organization_get_or_create(name=organization)
                user, password = services.member_create(
                    organization=org, username=username, role=Membership.Role.ADMIN, by=None,
                    first_name=first_name, last_name=last_name, email=email)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        how = (f"    temporary password: {password}\nThey choose their own password at their first login." if password
               else "They log in with their hospital account, whose username must be this one (kidneyweb's own "
                    "passwords are turned off here).")
        self.stdout.write(self.style.SUCCESS(
            f"Administrator of {org.name!r}{' (new organization)' if created else ''}:\n"
            f"    username: {user.get_username()}\n{how}"
        ))
