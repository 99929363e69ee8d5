"""manage.py mix SEED...: an instant mix, printed as M3U8, written or pushed."""

from django.core.management.base import BaseCommand, CommandError

from sonic import deliver as delivery
from sonic import similar
from sonic.management.commands.similar import find_track


class Command(BaseCommand):
    help = "An instant mix of tracks that sound like the seeds (paths or library file ids)."

    def add_arguments(self, parser):
        parser.add_argument("seeds", nargs="*", help="seed tracks: paths or library file ids")
        parser.add_argument("--artist", default="")
        parser.add_argument("--album", default="")
        parser.add_argument("--count", type=int, default=25)
        parser.add_argument("--artist-gap", type=int, default=3)
        parser.add_argument("--per-album", type=int, default=2)
        parser.add_argument("--min-duration", type=float, default=60.0)
        parser.add_argument("--max-duration", type=float, default=900.0)
        parser.add_argument("--no-seeds", action="store_true", help="leave the seeds out")
        parser.add_argument("--mood", default="", help="only tracks with this mood word")
        parser.add_argument("--tier", default="", help="the mood's tier or mood set")
        parser.add_argument("--name", default="Nomarr instant mix")
        parser.add_argument(
            "--to", choices=["m3u8", "write", "push"], default="m3u8",
            help="print M3U8 (default), write into NOMARR_PLAYLIST_DIR, or push to Navidrome",
        )  # fmt: skip

    def handle(self, *args, **o):
        seeds = [find_track(text) for text in o["seeds"]]
        try:
            found = similar.instant_mix({**o, "include_seeds": not o["no_seeds"]}, seeds)
            if o["to"] == "m3u8":
                self.stdout.write(delivery.m3u8(o["name"], found), ending="")
            else:
                self.stdout.write(delivery.deliver(o["to"], o["name"], found))
        except (similar.SonicError, delivery.DeliveryError) as exc:
            raise CommandError(str(exc)) from None
