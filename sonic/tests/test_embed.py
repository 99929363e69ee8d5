"""manage.py embed: embeddings for files analysed before sonic, or by another model set."""

import shutil

import pytest
from django.core.management import call_command

from library.rows import refresh_file
from sonic import embedding
from sonic.models import TrackEmbedding
from sonic.storage import current_model_set

pytestmark = pytest.mark.django_db


def test_embed_hears_the_files_without_current_embeddings_and_resumes(
    library, root_row, heard_variants, capsys
):
    source = next(h for h in heard_variants if h.clip == "joram" and h.variant == "flac")
    fresh, stale = library / "fresh.flac", library / "stale.flac"
    shutil.copyfile(source.path, fresh)
    shutil.copyfile(source.path, stale)
    before = fresh.read_bytes()
    refresh_file(fresh)  # tagged before sonic: rows, no embedding
    old = refresh_file(stale, result=source.result)
    TrackEmbedding.objects.filter(file=old).update(model_set="nomarr1-older")
    assert embedding.missing().count() == 2
    call_command("embed", "--here")
    assert "Embedded 2 of 2 files" in capsys.readouterr().out
    assert set(TrackEmbedding.objects.values_list("model_set", flat=True)) == {current_model_set()}
    assert TrackEmbedding.objects.count() == 4
    assert fresh.read_bytes() == before  # no tag written
    call_command("embed", "--here")
    assert "Every file has an embedding" in capsys.readouterr().out
