"""Similar tracks from real embeddings: a variant's neighbours are its clip's other variants."""

import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from library.models import LibraryFile
from library.rows import refresh_file
from library.scanning import scan_root
from sonic import similar
from sonic.models import TrackEmbedding
from sonic.tests.conftest import CLIPS, VARIANTS
from tagging import jobs
from tagging.models import Job

pytestmark = pytest.mark.django_db


def test_a_variants_nearest_neighbours_are_the_other_variants_of_its_clip(sonic_library):
    files = sonic_library()
    others = len(VARIANTS) - 1
    for name, file in files.items():
        clip = name.split("-")[0]
        found = similar.similar(file, count=others)
        assert [m.file.path.rsplit("/", 1)[1].split("-")[0] for m in found] == [clip] * others, name
        rest = similar.similar(file, count=len(files) - 1)[others:]
        assert min(m.score for m in found) > max(m.score for m in rest), name


def test_each_file_stores_the_mean_and_spread_of_every_backbone(sonic_library):
    file = sonic_library("joram-flac")["joram-flac"]
    rows = {row.backbone: row for row in TrackEmbedding.objects.filter(file=file)}
    assert set(rows) == {"msd-musicnn-1", "mtt-musicnn-1"}
    for row in rows.values():
        assert row.dims == 200 and row.mean.shape == row.spread.shape == (200,)
        assert row.spread.min() >= 0 and row.patches > 0


def test_the_file_page_lists_the_similar_tracks(sonic_library, client, django_user_model):
    files = sonic_library()
    client.force_login(django_user_model.objects.create_user("listener", password="x"))
    page = client.get(f"/sonic/similar/{files['msd-flac'].pk}/")
    assert page.status_code == 200
    text = page.content.decode()
    rows = text.split('id="similar-tracks"')[1]
    assert rows.index("msd tempo") < rows.index("joram flac")
    assert client.get(f"/library/file/{files['msd-flac'].pk}/").status_code == 200


def test_a_file_never_analysed_offers_to_queue_it(library, root_row, client, admin_user):
    song = library / "plain.mp3"
    shutil.copyfile(Path(settings.SHARED_DIR) / "fixtures/audio" / CLIPS["joram"][0], song)
    file = refresh_file(song)
    client.force_login(admin_user)
    text = client.get(f"/sonic/similar/{file.pk}/").content.decode()
    assert "not analysed yet" in text and "Queue it for analysis" in text


def test_the_similar_command_lists_the_nearest_first(sonic_library, capsys):
    files = sonic_library()
    call_command("similar", str(files["joram-eq"].pk), "--count", "3")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("/joram-" in line for line in lines)


def test_a_moved_file_keeps_its_embedding_and_a_deleted_one_leaves_the_index(
    sonic_library, root_row, library
):
    files = sonic_library()
    scan_root(root_row)
    moved_from = files["joram-tempo"]
    (library / "elsewhere").mkdir()
    target = library / "elsewhere" / "renamed.mp3"
    shutil.move(moved_from.path, target)
    gone = files["joram-pitch"]
    (library / "joram-pitch.ogg").unlink()
    result = scan_root(root_row)
    assert (result.moved, result.removed) == (1, 1)
    moved = LibraryFile.objects.get(pk=moved_from.pk)
    assert moved.path == str(target) and moved.embeddings.count() == 2
    assert not TrackEmbedding.objects.filter(file_id=gone.pk).exists()
    found = similar.similar(files["joram-flac"], count=len(files) - 2)
    assert gone.pk not in {m.file.pk for m in found}
    assert found[0].file.pk in {moved.pk, files["joram-eq"].pk}


def test_a_tagging_job_stores_the_embeddings_with_the_files_rows(library, root_row, heard_variants):
    source = next(h for h in heard_variants if h.clip == "msd" and h.variant == "flac")
    song = library / "fresh.flac"
    shutil.copyfile(source.path, song)
    job, _ = jobs.queue_file(song, force=True)
    assert jobs.run(job.pk) == Job.Status.DONE
    file = LibraryFile.objects.get(path=str(song))
    assert file.nom_version and file.embeddings.count() == 2
