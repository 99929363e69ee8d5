"""The first scan: every audio file of the root becomes a row, with its tags as columns
and as TagValue rows that can be queried by value and by number."""

import pytest

from library.models import LibraryFile, TagValue
from library.tests.helpers import ALBUM, ARTIST, FORMATS, TITLE
from tagging import writers
from tagging.keys import namespace, score_key, tier_key_for, version_key

# scaleout: bin/test runs these again on PostgreSQL (COPY, executemany, constraints).
pytestmark = [pytest.mark.django_db, pytest.mark.scaleout]

MB = {
    "recording": "8f3471b5-7e6a-48da-86a9-c1c07a0f47ae",
    "track": "1f1d3d1c-3a4b-4d53-9a46-6a7b3e3f1e01",
    "album": "6a8d4f9e-5c1b-4e2a-8f3d-2b1c0a9e8d7f",
    "artist": "b7ffd2af-418f-4be2-bdd1-22f8b48613da",
    "albumartist": "a74b1b7f-71a5-4011-9441-d0b5e4122711",
    "releasegroup": "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9",
}


def write_standard_tags(path):
    """Album artist, genres, date, track/disc numbers and MusicBrainz ids, the way
    Picard writes them in each container."""
    import mutagen
    from mutagen.id3 import TCON, TDRC, TPE2, TPOS, TRCK, TXXX, UFID, Encoding
    from mutagen.mp4 import MP4FreeForm

    audio = mutagen.File(path)
    tags = audio.tags
    kind = type(audio).__name__
    ids = {
        "MusicBrainz Release Track Id": MB["track"],
        "MusicBrainz Album Id": MB["album"],
        "MusicBrainz Artist Id": MB["artist"],
        "MusicBrainz Album Artist Id": MB["albumartist"],
        "MusicBrainz Release Group Id": MB["releasegroup"],
    }
    if kind in ("MP3", "WAVE", "AIFF"):
        tags.add(TPE2(encoding=Encoding.UTF8, text=["Various Artists"]))
        tags.add(TCON(encoding=Encoding.UTF8, text=["Electronic", "Ambient"]))
        tags.add(TDRC(encoding=Encoding.UTF8, text=["2009-05-04"]))
        tags.add(TRCK(encoding=Encoding.UTF8, text=["8/12"]))
        tags.add(TPOS(encoding=Encoding.UTF8, text=["1/2"]))
        tags.add(UFID(owner="http://musicbrainz.org", data=MB["recording"].encode()))
        for desc, value in ids.items():
            tags.add(TXXX(encoding=Encoding.UTF8, desc=desc, text=[value]))
        audio.save(v2_version=4) if kind == "MP3" else audio.save()
    elif kind == "MP4":
        tags["aART"] = ["Various Artists"]
        tags["©gen"] = ["Electronic", "Ambient"]
        tags["©day"] = ["2009-05-04"]
        tags["trkn"] = [(8, 12)]
        tags["disk"] = [(1, 2)]
        ids["MusicBrainz Track Id"] = MB["recording"]
        for name, value in ids.items():
            tags[f"----:com.apple.iTunes:{name}"] = [MP4FreeForm(value.encode())]
        audio.save()
    else:
        tags["ALBUMARTIST"] = ["Various Artists"]
        tags["GENRE"] = ["Electronic", "Ambient"]
        tags["DATE"] = ["2009-05-04"]
        tags["TRACKNUMBER"] = ["8"]
        tags["DISCNUMBER"] = ["1"]
        tags["MUSICBRAINZ_TRACKID"] = [MB["recording"]]
        tags["MUSICBRAINZ_RELEASETRACKID"] = [MB["track"]]
        tags["MUSICBRAINZ_ALBUMID"] = [MB["album"]]
        tags["MUSICBRAINZ_ARTISTID"] = [MB["artist"]]
        tags["MUSICBRAINZ_ALBUMARTISTID"] = [MB["albumartist"]]
        tags["MUSICBRAINZ_RELEASEGROUPID"] = [MB["releasegroup"]]
        audio.save()


def test_the_first_scan_stores_every_file_of_nested_folders(seven, add, scan, library):
    add("Other/Deeper/Still/track.flac")
    result = scan()
    assert result.status == "done"
    assert (result.seen, result.read, result.new, result.errors) == (8, 8, 8, 0)
    rows = {row.path: row for row in LibraryFile.objects.all()}
    assert set(rows) == {str(p) for p in seven} | {str(library / "Other/Deeper/Still/track.flac")}
    for path in seven:
        row = rows[str(path)]
        assert row.format == path.suffix[1:]
        assert row.folder == str(path.parent) and row.size == path.stat().st_size
        assert row.mtime_ns == path.stat().st_mtime_ns
        assert (row.title, row.artist, row.album) == (TITLE, ARTIST, ALBUM)
        assert row.duration == pytest.approx(29.2, abs=0.2)
        assert row.sample_rate and row.channels and len(row.fingerprint) == 32
        assert row.error == "" and row.nom_version == ""
        assert row.tag_dict()["title"] == [TITLE]


@pytest.mark.parametrize("fmt", FORMATS)
def test_standard_tags_and_musicbrainz_ids_are_read(fmt, add, scan):
    song = add(f"a/song.{fmt}")
    write_standard_tags(song)
    scan()
    row = LibraryFile.objects.get(path=str(song))
    assert row.album_artist == "Various Artists"
    assert row.genre == "Electronic; Ambient"
    assert (row.year, row.track_number) == (2009, 8)
    assert row.disc_number == 1
    assert row.mb_recording_id == MB["recording"]
    assert row.mb_track_id == MB["track"]
    assert row.mb_album_id == MB["album"]
    assert row.mb_artist_id == MB["artist"]
    assert row.mb_album_artist_id == MB["albumartist"]
    assert row.mb_release_group_id == MB["releasegroup"]
    tags = row.tag_dict()
    assert tags["genre"] == ["Electronic", "Ambient"]
    assert TagValue.objects.get(file=row, key="tracknumber").number == 8
    assert TagValue.objects.get(file=row, key="date").number == 2009


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a"])
def test_nomarr_scores_can_be_queried_by_number(fmt, add, scan):
    happy, sad = add(f"happy.{fmt}"), add(f"sad.{fmt}")
    key = score_key("mood_happy-msd-musicnn-1", "happy")
    for path, score, tier in ((happy, "0.873", "high"), (sad, "0.120", "none")):
        writers.write_tags(
            path,
            {key: [score], tier_key_for(key): [tier], version_key(): ["nomarr1-test"]},
            namespace(),
            ["happy"] if path is happy else [],
        )
    scan()
    found = LibraryFile.objects.filter(tags__key=key, tags__number__gt=0.7)
    assert [row.path for row in found] == [str(happy)]
    row = LibraryFile.objects.get(path=str(happy))
    assert row.nom_version == "nomarr1-test"
    assert row.tag_dict()[tier_key_for(key)] == ["high"]
    assert row.tag_dict()["mood"] == ["happy"]
    assert TagValue.objects.filter(key=tier_key_for(key), value="high").count() == 1
    # The user's own tags that only look like Nomarr's are not taken for Nomarr's.
    assert "nomad_rating" not in row.tag_dict()


def test_only_audio_files_are_taken_and_nomarr_temp_files_are_not(add, scan, library):
    add("a/song.flac")
    (library / "a" / "cover.jpg").write_bytes(b"\xff\xd8")
    (library / "a" / "notes.txt").write_text("hi")
    add("a/.nomarr-song.flac.abc123.tmp", fmt="flac")
    add("a/.nomarr-song.flac.abc123.flac", fmt="flac")
    result = scan()
    assert result.seen == 1
    assert list(LibraryFile.objects.values_list("path", flat=True)) == [
        str(library / "a" / "song.flac")
    ]


def test_ignore_patterns_skip_folders_and_files(add, scan, root_row, library):
    keep = add("Album/01.flac")
    add(".Trash-1000/files/deleted.flac")
    add("Album/._01.flac", fmt="flac")  # macOS metadata twin
    add("Podcasts/episode.mp3")
    root_row.ignore_patterns += "\nPodcasts"
    root_row.save()
    result = scan()
    assert list(LibraryFile.objects.values_list("path", flat=True)) == [str(keep)]
    assert result.skipped == 3 and result.errors == 0
