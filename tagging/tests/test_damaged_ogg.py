"""A damaged Ogg file is refused, not written: a tag write would recompute every page's
checksum after the comment header and hide the damage for good."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tagging import writers
from tagging.keys import version_key


def damage(path, where: float = 0.6) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x55
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", ["ogg", "opus"])
def test_it_refuses_to_write_into_an_ogg_file_with_a_damaged_page(make_audio, fmt):
    song = make_audio(fmt)
    damage(song)
    before = song.read_bytes()
    with pytest.raises(writers.TagWriteError, match="fails its checksum"):
        writers.write_tags(song, {version_key(): ["nomarr1-test"]}, "nom", None)
    assert song.read_bytes() == before


def test_an_intact_ogg_file_is_written_and_stays_intact(make_audio):
    song = make_audio("ogg")
    writers.write_tags(song, {version_key(): ["nomarr1-test"]}, "nom", None)
    writers.check_can_write(song)  # every page's checksum still holds after the write


def test_tag_reports_the_damage_before_any_analysis(make_audio):
    song = make_audio("ogg")
    damage(song)
    before = song.read_bytes()
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 1 files failed"):
        call_command("tag", str(song), stdout=out, stderr=StringIO())
    assert "fails its checksum" in out.getvalue()
    assert song.read_bytes() == before
