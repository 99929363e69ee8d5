"""manage.py revoke_api_key NAME_OR_PREFIX: revoke keys at once (cannot be undone)."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet
from rest_framework_api_key.models import APIKey


def usable_keys(name_or_prefix: str) -> QuerySet:
    """The unrevoked keys with this name, or else the one with this prefix."""
    wanted = name_or_prefix.strip()
    if not wanted:
        raise CommandError("give a key's name or its prefix")
    keys = APIKey.objects.get_usable_keys()
    by_name = keys.filter(name=wanted)
    if by_name.exists():
        return by_name
    by_prefix = keys.filter(prefix=wanted)
    if by_prefix.exists():
        return by_prefix
    raise CommandError(f"no usable API key named {wanted!r} or with that prefix")


def revoke(keys: QuerySet) -> list[str]:
    prefixes = list(keys.values_list("prefix", flat=True))
    # An update, not save(): one statement, and the keys stop working at once.
    APIKey.objects.filter(prefix__in=prefixes).update(revoked=True)
    return prefixes


class Command(BaseCommand):
    help = (
        "Revoke API keys: every unrevoked key with this name, or the key with this "
        "prefix. Clients using them get 401 from the next request."
    )

    def add_arguments(self, parser):
        parser.add_argument("name_or_prefix")

    def handle(self, *args, **options):
        prefixes = revoke(usable_keys(options["name_or_prefix"]))
        self.stdout.write(f"revoked {len(prefixes)} key(s): {', '.join(sorted(prefixes))}")
