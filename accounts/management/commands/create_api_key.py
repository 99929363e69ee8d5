"""manage.py create_api_key NAME: a new API key, printed once, alone on the last line."""

from django.core.management.base import BaseCommand, CommandError
from rest_framework_api_key.models import APIKey

NAME_MAX = APIKey._meta.get_field("name").max_length


def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise CommandError("the key needs a name (for example: lidarr)")
    if len(name) > NAME_MAX:
        raise CommandError(f"the name is longer than {NAME_MAX} characters")
    return name


def new_key(command: BaseCommand, name: str) -> None:
    api_key, key = APIKey.objects.create_key(name=name)
    command.stderr.write(
        f"API key {name!r} created (prefix {api_key.prefix}). It is shown only now; "
        "store it where the client can read it."
    )
    command.stdout.write(key)


class Command(BaseCommand):
    help = (
        "Create an API key for a machine client (Lidarr, scripts). The key is printed "
        "once, alone on the last line of standard output; only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="What the key is for, e.g. lidarr (50 characters max).")

    def handle(self, *args, **options):
        new_key(self, check_name(options["name"]))
