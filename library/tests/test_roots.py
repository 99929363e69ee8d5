"""Library roots: the LibraryRoot table, seeded from NOMARR_LIBRARY_ROOTS, bounds every path."""

import os
from pathlib import Path

import pytest

from library.models import LibraryRoot
from library.roots import library_roots, root_for, sync_settings_roots
from tagging.boundary import OutsideLibrary, resolve_in_library

pytestmark = pytest.mark.django_db


def test_a_settings_root_counts_before_it_has_a_row(library, add):
    song = add("a.flac")
    assert not LibraryRoot.objects.exists()
    assert library_roots() == [library]
    assert resolve_in_library(str(song)) == song


def test_it_refuses_a_path_outside_the_library(library, tmp_path):
    outside = tmp_path / "elsewhere.flac"
    outside.write_bytes(b"x")
    with pytest.raises(OutsideLibrary):
        resolve_in_library(str(outside))
    with pytest.raises(OutsideLibrary):
        resolve_in_library("relative/path.flac")


def test_it_refuses_dotdot_and_symlinks_that_leave_the_root(library, tmp_path, add):
    add("a.flac")
    secret = tmp_path / "secret.flac"
    secret.write_bytes(b"x")
    with pytest.raises(OutsideLibrary):
        resolve_in_library(f"{library}/../secret.flac")
    (library / "link.flac").symlink_to(secret)
    with pytest.raises(OutsideLibrary):
        resolve_in_library(str(library / "link.flac"))
    # A sibling folder whose name starts with the root's is not inside it.
    sibling = Path(f"{library}-other")
    sibling.mkdir()
    (sibling / "b.flac").write_bytes(b"x")
    with pytest.raises(OutsideLibrary):
        resolve_in_library(str(sibling / "b.flac"))


def test_a_missing_path_inside_the_library_is_file_not_found(library):
    with pytest.raises(FileNotFoundError):
        resolve_in_library(str(library / "nope.flac"))


def test_settings_roots_are_seeded_into_the_table_once(library):
    created = sync_settings_roots()
    assert [(r.path, r.name, r.from_settings) for r in created] == [(str(library), "music", True)]
    assert sync_settings_roots() == []
    assert LibraryRoot.objects.count() == 1


def test_a_root_added_in_the_table_is_part_of_the_library(library, tmp_path, settings):
    extra = tmp_path / "more music"
    (extra / "x").mkdir(parents=True)
    song = extra / "x" / "song.mp3"
    song.write_bytes(b"x")
    with pytest.raises(OutsideLibrary):
        resolve_in_library(str(song))
    LibraryRoot.objects.create(path=str(extra), name="more")
    assert resolve_in_library(str(song)) == song
    assert set(library_roots()) == {library, extra}
    assert root_for(song).name == "more"


def test_a_disabled_root_is_out_even_while_the_settings_name_it(library, add):
    song = add("a.flac")
    sync_settings_roots()
    LibraryRoot.objects.filter(path=str(library)).update(enabled=False)
    assert library_roots() == []
    with pytest.raises(OutsideLibrary):
        resolve_in_library(str(song))
    # ...and seeding does not switch it back on.
    sync_settings_roots()
    assert not LibraryRoot.objects.get(path=str(library)).enabled


def test_a_root_is_stored_as_its_real_path(tmp_path, settings):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    root = LibraryRoot.objects.create(path=f"{link}/./")
    assert root.path == str(real) and root.name == "real"
    song = real / "a.flac"
    song.write_bytes(b"x")
    assert resolve_in_library(str(link / "a.flac")) == song


def test_nested_roots_give_a_file_to_the_deepest(library):
    inner = library / "Classical"
    inner.mkdir()
    LibraryRoot.objects.create(path=str(library))
    LibraryRoot.objects.create(path=str(inner))
    assert root_for(inner / "a.flac").path == str(inner)
    assert root_for(library / "a.flac").path == str(library)
    assert root_for(Path(os.sep) / "tmp" / "a.flac") is None


def test_the_admin_form_refuses_a_relative_or_missing_folder(library):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        LibraryRoot(path="music").clean()
    with pytest.raises(ValidationError):
        LibraryRoot(path=str(library / "missing")).clean()
    LibraryRoot(path=str(library)).clean()
