"""Which keys a re-tag keeps when the pipeline does not produce them: the suggestions,
and the keys another owner (a taught tag) answers for; nothing else of the namespace."""

from __future__ import annotations

from tagging import keys


def test_a_retag_keeps_suggestions_and_owned_keys_only() -> None:
    owned = {"nom_workout_msd_musicnn_1__workout", "nom_workout_msd_musicnn_1__workout__tier"}
    assert keys.is_kept_on_retag("nom_genre_suggested", namespace="nom")
    assert keys.is_kept_on_retag(keys.suggestion_key("genre", "nom"), namespace="nom")
    for key in owned:
        assert keys.is_kept_on_retag(key, owned, namespace="nom")
        assert not keys.is_kept_on_retag(key, namespace="nom")  # nobody owns it now
    for key in [
        "nom_old_model_1__gone",
        "nom_old_model_1__gone__tier",
        "nom_mood_regular",
        "nom_version",
        "nom_genre__suggested",  # malformed: no suggestion
        "other_genre_suggested",  # another namespace's
    ]:
        assert not keys.is_kept_on_retag(key, namespace="nom"), key
    # Another namespace keeps its own suggestions.
    assert keys.is_kept_on_retag("mine_genre_suggested", namespace="mine")
    assert not keys.is_kept_on_retag("nom_genre_suggested", namespace="mine")
