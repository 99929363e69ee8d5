"""manage.py rotate_api_key NAME_OR_PREFIX: revoke the old key(s), print a new one."""

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.management.commands.create_api_key import new_key
from accounts.management.commands.revoke_api_key import revoke, usable_keys


class Command(BaseCommand):
    help = (
        "Replace an API key: the unrevoked keys with this name (or the key with this "
        "prefix) are revoked at once, and a new key with the same name is printed, "
        "alone on the last line of standard output."
    )

    def add_arguments(self, parser):
        parser.add_argument("name_or_prefix")

    def handle(self, *args, **options):
        with transaction.atomic():
            keys = usable_keys(options["name_or_prefix"])
            name = keys.first().name
            prefixes = revoke(keys)
            self.stderr.write(f"revoked {len(prefixes)} key(s): {', '.join(sorted(prefixes))}")
            new_key(self, name)
