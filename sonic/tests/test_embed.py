"""Embeddings for files heard before sonic, or by another model set: `manage.py embed`
and the auto-tag path, both through EmbedRequest rows that the workers claim."""

import shutil

import pytest
from django.core.management import call_command
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from library.models import LibraryFile
from library.rows import refresh_file
from library.scanning import scan_root
from sonic import embedding, tasks
from sonic.models import EmbedRequest, TrackEmbedding
from sonic.storage import current_model_set
from tagging.catalog import current_version
from tagging.models import Job
from tagging.signals import workers_started

pytestmark = pytest.mark.django_db


def sent_embed_batches() -> list[list[int]]:
    """The request ids of the embed messages waiting in the broker, taken off it."""
    broker = get_broker()
    if not broker.queue_size():
        return []
    tasks_sent = [SignedPackage.loads(payload) for _, payload in broker.dequeue()]
    return [t["args"][0] for t in tasks_sent if t["func"] == "sonic.tasks.embed_requests"]


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
    assert set(EmbedRequest.objects.values_list("status", flat=True)) == {"done"}
    call_command("embed", "--here")
    assert "Every file has an embedding" in capsys.readouterr().out


def test_a_scan_has_a_tagged_file_without_an_embedding_heard_by_the_workers(
    library, root_row, heard_variants
):
    root_row.auto_tag = True
    root_row.save()
    source = next(h for h in heard_variants if h.clip == "msd" and h.variant == "eq")
    song = library / "tagged-before-sonic.opus"
    shutil.copyfile(source.path, song)
    before = song.read_bytes()
    scan_root(root_row)
    file = LibraryFile.objects.get(path=str(song))
    assert file.nom_version == current_version()  # its tags are current: no tagging job
    assert not Job.objects.exists() and not file.embeddings.exists()
    [batch] = sent_embed_batches()
    assert EmbedRequest.objects.get(file=file).status == "pending"
    tasks.embed_requests(batch)  # what the worker runs
    assert file.embeddings.filter(model_set=current_model_set()).count() == 2
    assert EmbedRequest.objects.get(file=file).status == "done"
    assert tasks.embed_requests(batch) == 0  # a message sent twice hears the file once
    assert song.read_bytes() == before  # no tag written
    scan_root(root_row)
    assert sent_embed_batches() == []  # nothing left to ask for


def test_requests_a_dead_worker_held_are_sent_again_when_workers_start(
    library, root_row, heard_variants, settings
):
    sources = [h for h in heard_variants if h.variant == "tempo"]
    files = []
    for n, source in enumerate(sources):
        song = library / f"held-{n}.mp3"
        shutil.copyfile(source.path, song)
        files.append(refresh_file(song))
    held, waiting = embedding.request([f.pk for f in files])
    assert EmbedRequest.objects.filter(pk=held, status="pending").update(
        status="running", worker="gone-host:1", claimed_at="2020-01-01T00:00:00Z"
    )
    sent_embed_batches()
    workers_started.send(sender=None)
    assert sent_embed_batches() == [[held, waiting]]
    assert set(EmbedRequest.objects.values_list("status", flat=True)) == {"pending"}
    # Past half its time a batch hands the rest over, as a message of its own.
    settings.NOMARR_JOB_TIMEOUT = 0
    assert embedding.run([held, waiting]) == 1
    assert sent_embed_batches() == [[waiting]]
    assert files[0].embeddings.count() == 2 and not files[1].embeddings.exists()


def test_embed_fails_when_a_file_could_not_be_heard_and_lists_only_this_runs_failures(
    library, root_row, heard_variants, capsys
):
    from django.core.management.base import CommandError

    source = next(h for h in heard_variants if h.clip == "joram" and h.variant == "flac")
    broken, healed = library / "broken.flac", library / "healed.flac"
    shutil.copyfile(source.path, broken)
    shutil.copyfile(source.path, healed)
    broken_file, healed_file = refresh_file(broken), refresh_file(healed)
    # An earlier run's failure, newer than this run's request, whose file was heard since.
    [this_run] = embedding.request([broken_file.pk])
    [earlier] = embedding.request([healed_file.pk])
    assert earlier > this_run
    EmbedRequest.objects.filter(pk=earlier).update(status="error", error="an earlier failure")
    refresh_file(healed, result=source.result)  # its tagging job stored its embeddings
    broken.write_bytes(b"not audio at all " * 4096)  # damaged after the scan
    with pytest.raises(CommandError, match="1 of 1 files could not be heard"):
        call_command("embed", "--here")
    out = capsys.readouterr().out
    assert "Embedded 0 of 1 files" in out and f"could not hear {broken}" in out
    assert "an earlier failure" not in out
    assert EmbedRequest.objects.get(pk=this_run).status == "error"
    assert not broken_file.embeddings.exists()
