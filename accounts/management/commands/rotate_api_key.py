"""manage.py rotate_api_key NAME_OR_PREFIX: revoke the old key(s), print a new one."""

from django.core.management.base import BaseCommand, CommandError

from accounts import keys
from accounts.management.commands.create_api_key import print_new_key


class Command(BaseCommand):
    help = (
        "Replace an API key: the unrevoked keys with this name (or the key with this "
        "prefix) are revoked at once, and a new key with the same name is printed, "
        "alone on the last line of standard output."
    )

    def add_arguments(self, parser):
        parser.add_argument("name_or_prefix")

    def handle(self, *args, **options):
        try:
            new = keys.rotate(options["name_or_prefix"])
        except keys.KeyRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"revoked {len(new.replaces)} key(s): {', '.join(new.replaces)}")
        print_new_key(self, new)
