from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from diagnosis import services


class Command(BaseCommand):
    help = (
        "Remove a user's authenticator and recovery codes after a lost phone, for whoever no administrator can "
        "reset on the Members page: a site superuser outside any organization, or an organization's only "
        "administrator. They set up a new authenticator at their next login. Check who is asking first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--reason", required=True,
                            help='Recorded and logged, e.g. "lost phone, identity checked in person by the IT desk".')

    def handle(self, *args, username: str, reason: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        try:
            reset = services.two_factor_reset_on_server(user=user, reason=reason)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        if not reset:
            self.stdout.write(f"{username} has no authenticator: nothing to reset.")
            return
        self.stdout.write(self.style.SUCCESS(
            f"Two-factor authentication of {username} is reset: they log in with their password and set up a new "
            "authenticator (with new recovery codes) from the Account page (a site superuser too), or at once where "
            "their organization requires it."))
