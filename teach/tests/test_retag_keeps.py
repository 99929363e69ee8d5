"""A re-tag by the pipeline keeps the keys other owners wrote: a taught tag's scores
and tiers (not saved as a head: the pipeline does not produce them) and the genre
suggestion. An old model's key is still dropped, and a forgotten tag's keys go with
the next re-tag."""

from __future__ import annotations

from pathlib import Path

import pytest

from library.models import TagValue
from library.rows import refresh_file
from tagging import keys, pipeline, tagfiles, writers
from teach import genres, heads, learning
from teach.tests.test_teach import teach_joram

pytestmark = pytest.mark.django_db


def test_a_forced_retag_keeps_taught_keys_and_the_suggestion(teach_library, audio_stream_hash):
    files = teach_library()
    tag = teach_joram(files)
    learning.train(tag)
    assert learning.apply(tag).written == len(files)
    assert genres.write(genres.learn()).written == 4  # the held-out variants
    namespace = keys.namespace()
    taught = learning.tag_keys(tag.name, tag.backbone)
    suggestion = genres.suggested_key()

    file = files["joram-eq"]  # Opus: Vorbis comments
    path = Path(file.path)
    # An old model's key, left by an earlier model set: not kept.
    held = tagfiles.read_tags(path, namespace)
    writers.write_tags(path, {**held, "nom_old_model_1__gone": ["0.5"]}, namespace, None)
    before = tagfiles.read_tags(path, namespace)
    assert set(taught) | {suggestion} <= set(before)
    audio = audio_stream_hash(path)

    result = pipeline.tag_file(path, force=True)
    assert result.status == "tagged", result.error
    after = tagfiles.read_tags(path, namespace)
    for key in [*taught, suggestion]:
        assert after[key] == before[key], key
    assert "nom_old_model_1__gone" not in after
    # Every key the pipeline produces is there, freshly written.
    assert {k: v for k, v in after.items() if k in result.tags} == result.tags
    assert set(after) == set(result.tags) | set(taught) | {suggestion}
    assert audio_stream_hash(path) == audio
    # And the library's rows (refreshed as a tagging job refreshes them) hold them.
    refresh_file(path)
    for key in [*taught, suggestion]:
        assert TagValue.objects.filter(file=file, key=key, value=after[key][0]).exists()

    # A file whose tags are all the pipeline's (MP3, ID3) keeps its taught keys too.
    other = Path(files["msd-later"].path)
    kept = {k: v for k, v in tagfiles.read_tags(other, namespace).items() if k in taught}
    assert pipeline.tag_file(other, force=True).status == "tagged"
    assert {k: v for k, v in tagfiles.read_tags(other, namespace).items() if k in taught} == kept

    # A forgotten tag owns nothing any more: its keys go with the next re-tag; the
    # suggestion stays.
    tag.delete()
    assert pipeline.tag_file(path, force=True).status == "tagged"
    last = tagfiles.read_tags(path, namespace)
    assert not set(taught) & set(last)
    assert last[suggestion] == before[suggestion]


def test_a_tag_saved_as_a_head_is_written_afresh_by_the_retag(teach_library, models_folder):
    files = teach_library()
    tag = teach_joram(files)
    learning.train(tag)
    learning.apply(tag)
    heads.save_head(tag)
    path = Path(files["joram-later"].path)
    key = learning.score_key(tag.name, tag.backbone)

    result = pipeline.tag_file(path, force=True)
    assert result.status == "tagged", result.error
    assert key in result.tags  # the pipeline runs the head now
    after = tagfiles.read_tags(path, keys.namespace())
    assert after[key] == result.tags[key] and float(after[key][0]) > 0.8
    tier = keys.tier_key_for(key)
    assert after[tier] == result.tags[tier]
