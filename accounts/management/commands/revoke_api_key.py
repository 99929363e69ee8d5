"""manage.py revoke_api_key NAME_OR_PREFIX: revoke keys at once (cannot be undone)."""

from django.core.management.base import BaseCommand, CommandError

from accounts import keys


class Command(BaseCommand):
    help = (
        "Revoke API keys: every unrevoked key with this name, or the key with this "
        "prefix. Clients using them get 401 from the next request."
    )

    def add_arguments(self, parser):
        parser.add_argument("name_or_prefix")

    def handle(self, *args, **options):
        try:
            prefixes = keys.revoke(options["name_or_prefix"])
        except keys.KeyRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"revoked {len(prefixes)} key(s): {', '.join(prefixes)}")
