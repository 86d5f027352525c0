from django.core.management.base import BaseCommand, CommandError, CommandParser

from diagnosis import sealed, services


class Command(BaseCommand):
    help = (
        "Seal every stored archive password, notification secret and authenticator app's secret again with the "
        "current key "
        "(KIDNEYWEB_CREDENTIALS_KEY, or the one derived from SECRET_KEY). Run it after changing either, with the old "
        "key in KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS (or the old SECRET_KEY in SECRET_KEY_FALLBACKS); then the old "
        "one can go. Fails, naming them, when some cannot be opened."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--generate-key", action="store_true",
                            help="Print a new key for KIDNEYWEB_CREDENTIALS_KEY and change nothing.")

    def handle(self, *args, generate_key: bool, **options) -> None:
        if generate_key:
            self.stdout.write(sealed.generate_key())
            self.stderr.write("Set KIDNEYWEB_CREDENTIALS_KEY to it on every web and worker process, with the key used "
                              "until now in KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS (none: leave it empty, SECRET_KEY's "
                              "is read anyway), then run `manage.py reseal_credentials`.")
            return
        summary = services.credentials_reseal()
        for line in summary.unreadable:
            self.stderr.write(line)
        if summary.unreadable:
            raise CommandError(f"{len(summary.unreadable)} stored credential(s) could not be opened and are unchanged; "
                               f"{summary.resealed} other(s) resealed.")
        self.stdout.write(self.style.SUCCESS(
            f"{summary.resealed} stored credential(s) sealed with the current key: keys in "
            "KIDNEYWEB_CREDENTIALS_PREVIOUS_KEYS and SECRET_KEY_FALLBACKS are no longer needed for them."))
