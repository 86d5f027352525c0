import os
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from diagnosis import selectors, services
from diagnosis.ml import resolve_model_path, stored_model_path

DEMO_ORGANIZATION = "Demo Hospital"
DEMO_USERNAME = "demo"


class Command(BaseCommand):
    help = (
        "Prepare a fresh installation (safe to run every start): register the shipped model and "
        "activate it unless an administrator chose another, and create the demo organization and "
        "clinician (password from DEMO_PASSWORD, or generated and printed on first creation)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="Do not create the demo organization and user.")

    def handle(self, *args, no_demo: bool, **options) -> None:
        self._register_shipped_model()
        if not no_demo:
            self._create_demo_user()

    def _register_shipped_model(self) -> None:
        path = settings.KIDNEYWEB_MODEL_PATH
        if not path.is_file():
            self.stderr.write(self.style.WARNING(f"Shipped model not found at {path}; no model registered."))
            return
        active = selectors.model_version_active()
        # Follow updates of the shipped file, but never override a version an administrator activated,
        # unless its file is gone (a release that replaced the shipped model): no model at all helps no one.
        active_missing = active is not None and not resolve_model_path(active.path).is_file()
        if active_missing:
            self.stderr.write(self.style.WARNING(
                f"The active model file {active.path} no longer exists; activating the shipped model instead."))
        activate = active is None or active_missing or active.path == stored_model_path(path)
        try:
            version = services.model_version_register(path=path, activate=activate)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        active = selectors.model_version_active()
        self.stdout.write(f"Model version {version.name} registered; active: {active.name if active else 'none'}.")

    def _create_demo_user(self) -> None:
        organization, _ = services.organization_get_or_create(name=DEMO_ORGANIZATION)
        password = os.environ.get("DEMO_PASSWORD") or ""
        user, created = services.member_get_or_create(organization=organization, username=DEMO_USERNAME)
        if created or (password and not user.check_password(password)):
            password = password or secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo clinician of {DEMO_ORGANIZATION!r}:\n"
                    f"    username: {DEMO_USERNAME}\n"
                    f"    password: {password}"
                )
            )
        else:
            self.stdout.write(
                f"Demo clinician {DEMO_USERNAME!r} already exists (password unchanged; set DEMO_PASSWORD to reset it)."
            )
