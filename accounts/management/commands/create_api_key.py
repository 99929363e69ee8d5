"""manage.py create_api_key NAME: a new API key, printed once, alone on the last line."""

from django.core.management.base import BaseCommand, CommandError

from accounts import keys


def print_new_key(command: BaseCommand, new: keys.NewKey) -> None:
    """The note on standard error, the key alone on the last line of standard output."""
    command.stderr.write(
        f"API key {new.api_key.name!r} created (prefix {new.api_key.prefix}). It is shown "
        "only now; store it where the client can read it."
    )
    command.stdout.write(new.key)


class Command(BaseCommand):
    help = (
        "Create an API key for a machine client (Lidarr, scripts). The key is printed "
        "once, alone on the last line of standard output; only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "name", help=f"What the key is for, e.g. lidarr ({keys.NAME_MAX} characters max)."
        )

    def handle(self, *args, **options):
        try:
            new = keys.create(options["name"])
        except keys.KeyRefused as exc:
            raise CommandError(str(exc)) from exc
        print_new_key(self, new)
