"""Teaching a tag from real clips: learned from the stored embeddings, written into the
files with no model run, saved as a head the pipeline runs, refused when it cannot be."""

from __future__ import annotations

import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from library.models import LibraryFile, TagValue
from sonic.index import search_backbone
from tagging import catalog, keys, pipeline, tagfiles
from teach import examples, genres, heads, learning
from teach.models import TaughtTag
from teach.tests.conftest import HELD_OUT, TRAIN

pytestmark = pytest.mark.django_db


def teach_joram(files, name: str = "solipsism") -> TaughtTag:
    """A tag taught from the TRAIN variants: Joram's yes, the MSD clip's no."""
    tag = TaughtTag.objects.create(name=learning.check_name(name))
    for variant in TRAIN:
        examples.mark(tag, files[f"joram-{variant}"], True)
        examples.mark(tag, files[f"msd-{variant}"], False)
    return tag


def stored_score(file: LibraryFile, tag: TaughtTag) -> float:
    _, matrix = learning.embeddings([file.pk])
    weights, bias = tag.coefficients()
    return float(learning.probabilities(matrix, weights, bias)[0])


def test_a_tag_taught_from_variants_of_one_clip_separates_held_out_variants(
    teach_library, audio_stream_hash
):
    files = teach_library()
    tag = teach_joram(files)
    preview = learning.train(tag)

    assert preview.positives == preview.negatives == len(TRAIN)
    assert preview.accuracy == 1.0 and preview.balanced_accuracy == 1.0
    assert preview.scored == len(files)
    # The most confident tracks outside the examples are Joram's held-out variants.
    top = {s.file.pk for s in preview.most[: len(HELD_OUT)]}
    assert top == {files[f"joram-{v}"].pk for v in HELD_OUT}
    assert any("more yes" in line for line in preview.advice)  # 6 a side is few

    # Nothing is written before apply.
    key = learning.score_key(tag.name, search_backbone())
    held = {name: files[name] for name in (f"{c}-{v}" for c in ("joram", "msd") for v in HELD_OUT)}
    for file in held.values():
        assert key not in tagfiles.read_tags(file.path, keys.namespace())
    before = {name: tagfiles.read_tags(f.path, keys.namespace()) for name, f in held.items()}
    audio = {name: audio_stream_hash(f.path) for name, f in held.items()}

    written = learning.apply(tag)
    assert written.written == len(files) and not written.failed
    for name, file in held.items():
        in_file = tagfiles.read_tags(file.path, keys.namespace())
        score = float(in_file[key][0])
        tier = in_file[keys.tier_key_for(key)][0]
        if name.startswith("joram"):
            assert score > 0.8 and tier in ("high", "medium"), (name, score, tier)
        else:
            assert score < 0.2 and tier == "none", (name, score, tier)
        assert score == pytest.approx(stored_score(file, tag), abs=0.001)
        # Every other key is as the job wrote it; the audio is untouched.
        assert {
            k: v for k, v in in_file.items() if k not in learning.tag_keys(tag.name, tag.backbone)
        } == before[name]
        assert audio_stream_hash(file.path) == audio[name]
        # The library's rows know it: the playlist builder and analytics read these.
        assert TagValue.objects.filter(file=file, key=key, value=in_file[key][0]).exists()
    tag.refresh_from_db()
    assert tag.applied_files == len(files)


def test_the_saved_head_gives_new_files_the_tag_through_the_pipeline(teach_library, models_folder):
    files = teach_library()
    tag = teach_joram(files)
    learning.train(tag)
    # Saving a head changes the model set, so what the classifier says is read first.
    expected = {name: stored_score(files[name], tag) for name in ("joram-later", "msd-eq")}

    pb = heads.save_head(tag)
    assert pb.parent == models_folder and pb.with_suffix(".json").is_file()
    found = catalog.current_catalog()
    head = next(h for h in found.heads if h.stem == pb.stem)
    assert head.labels == [tag.name, f"non_{tag.name}"] and head.backbone == tag.backbone

    # The pipeline averages the head over a file's patches; the classifier scored the
    # track's mean embedding. Both must tell the clips apart and nearly agree.
    key = learning.score_key(tag.name, tag.backbone)
    for name, score in expected.items():
        analysis = pipeline.analyse(Path(files[name].path), found)
        through_head = float(analysis.tags[key][0])
        print(
            f"{name}: classifier on the mean {score:.4f}, head over the patches {through_head:.4f}"
        )
        assert through_head == pytest.approx(score, abs=0.03), name
        assert (through_head > 0.5) == name.startswith("joram")


def test_bad_input_is_refused_with_nothing_written(teach_library, settings):
    files = teach_library()
    mtimes = {f.path: os.stat(f.path).st_mtime_ns for f in files.values()}

    for bad, why in [
        ("Rainy Day", "not a valid field name"),
        ("9lives", "not a valid field name"),
        ("a__b", "not a valid field name"),
        ("non_workout", "negation"),
        ("", "give the tag a name"),
    ]:
        with pytest.raises(learning.TeachError, match=why):
            learning.check_name(bad)
    # A name whose head would be an installed model, and a key files already hold.
    with pytest.raises(learning.TeachError, match="installed model danceability-msd-musicnn-1"):
        learning.check_name("danceability", backbone="msd-musicnn-1")
    # (A tag forgotten after it was written leaves its keys in the files.)
    TagValue.objects.create(file=files["msd-eq"], key="nom_sprint_mtt_musicnn_1__sprint", value="1")
    with pytest.raises(learning.TeachError, match="collides with the key"):
        learning.check_name("sprint", backbone="mtt-musicnn-1")

    tag = TaughtTag.objects.create(name="workout")
    with pytest.raises(learning.TeachError, match="no examples yet"):
        learning.train(tag)
    for variant in TRAIN:
        examples.mark(tag, files[f"joram-{variant}"], True)
    with pytest.raises(learning.TeachError, match="every analysed example is a yes"):
        learning.train(tag)
    for variant in list(TRAIN)[:3]:
        examples.mark(tag, files[f"msd-{variant}"], False)
    with pytest.raises(learning.TeachError, match=r"too few examples: 5 yes and 3 no .*2 more no"):
        learning.train(tag)
    # Examples never analysed: files the library has, with no embedding.
    for file in [files[f"msd-{v}"] for v in list(TRAIN)[3:]]:
        file.embeddings.all().delete()
        examples.mark(tag, file, False)
    with pytest.raises(learning.TeachError, match="2 examples not analysed yet"):
        learning.train(tag)
    with pytest.raises(learning.TeachError, match="not trained yet"):
        learning.apply(tag)

    tag.refresh_from_db()
    assert not tag.trained
    assert {f.path: os.stat(f.path).st_mtime_ns for f in files.values()} == mtimes


def test_a_tag_learned_under_other_models_must_be_trained_again(teach_library):
    files = teach_library()
    tag = teach_joram(files)
    learning.train(tag)
    TaughtTag.objects.filter(pk=tag.pk).update(model_set="nomarr1-another")
    tag.refresh_from_db()
    with pytest.raises(learning.TeachError, match="train it again"):
        learning.apply(tag)


def test_genre_suggestions_fill_files_without_a_genre_and_never_genre(teach_library):
    files = teach_library()
    found = genres.learn()
    assert [g for g, _ in found.genres] == ["Ambient", "Rock"]
    assert found.accuracy == 1.0
    assert len(found.suggested) == 2 * len(HELD_OUT)  # the held-out variants carry no genre

    written = genres.write(found)
    assert written.written == len(found.suggested) and not written.failed
    key = genres.suggested_key()
    assert key == "nom_genre_suggested"
    for clip in ("joram", "msd"):
        for variant in HELD_OUT:
            file = LibraryFile.objects.get(pk=files[f"{clip}-{variant}"].pk)
            assert tagfiles.read_tags(file.path, keys.namespace())[key] == [
                {"joram": "Ambient", "msd": "Rock"}[clip]
            ]
            assert file.genre == ""  # GENRE itself is the user's: untouched
    # Files with a genre get no suggestion.
    assert key not in tagfiles.read_tags(files["joram-slow"].path, keys.namespace())


def test_the_command_teaches_a_tag_and_refuses_bad_names(teach_library, library):
    files = teach_library()
    with pytest.raises(CommandError, match="not a valid field name"):
        call_command("teach", "new", "Bad Name")
    out = StringIO()
    call_command("teach", "new", "solo", stdout=out)
    call_command("teach", "add", "solo", "tag", "genre", "Ambient", "--yes", stdout=out)
    call_command("teach", "add", "solo", "tag", "genre", "rock", "--no", stdout=out)
    assert "5 examples marked yes" in out.getvalue() and "5 examples marked no" in out.getvalue()
    call_command("teach", "train", "solo", stdout=out)
    assert "cross-validated accuracy 1.000" in out.getvalue()
    assert "nothing written yet" in out.getvalue()
    key = learning.score_key("solo", search_backbone())
    assert key not in tagfiles.read_tags(files["joram-eq"].path, keys.namespace())
