"""/api/v1/similar, /api/v1/mix and /api/v1/path: the sonic similarity API.

A track is named by `path` (checked by tagging.serializers.library_path, the one
request-path check: 400, 403 outside the library, 404 not there), `id` (a library
file id) or `mbid` (a MusicBrainz recording id). A track with no embedding of the
current model set answers 404 `not_analysed`, with `stale` and how to queue it; a
library with none answers 404 `empty_library`; a NOMARR_SIMILAR_BACKBONE that names no
installed backbone 503 `misconfigured`; a count, a duration, a mood word or a tier
that sonic.similar refuses 400 `invalid_request` (the checks are sonic.similar's, so
the API and the pages refuse alike).
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from library.models import LibraryFile
from nomarr_site.api import (
    APIError,
    ErrorSerializer,
    NomarrView,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    errors,
    validated,
)
from sonic import deliver as delivery
from sonic import similar, tracks
from tagging.serializers import library_path


def _error(code: str, status: int) -> type[APIError]:
    return type(code, (APIError,), {"status_code": status, "code": code})


NotAnalysedError = _error("not_analysed", 404)
EmptyLibraryError = _error("empty_library", 404)
FileNotInLibrary = _error("file_not_found", 404)
BadRequest = _error("invalid_request", 400)
Misconfigured = _error("misconfigured", 503)
DeliveryFailed = _error("playlist_failed", 409)


# --- what comes in ------------------------------------------------------------------------


class TrackRefSerializer(serializers.Serializer):
    path = StrictCharField(required=False, max_length=4096, help_text="The file's path.")
    id = StrictIntegerField(required=False, min_value=1, help_text="A library file id.")
    mbid = StrictCharField(required=False, max_length=200, help_text="A MusicBrainz recording id.")


class SimilarParamsSerializer(TrackRefSerializer):
    path = serializers.CharField(required=False, max_length=4096)
    id = serializers.IntegerField(required=False, min_value=1)
    mbid = serializers.CharField(required=False, max_length=200)
    count = serializers.IntegerField(
        required=False, default=20, min_value=1, max_value=similar.MAX_COUNT
    )


class MixRequestSerializer(serializers.Serializer):
    seeds = serializers.ListField(
        child=TrackRefSerializer(), required=False, max_length=similar.MAX_COUNT, default=list
    )
    album = StrictCharField(required=False, default="", max_length=500)
    artist = StrictCharField(required=False, default="", max_length=500)
    count = StrictIntegerField(required=False, default=25, min_value=1, max_value=similar.MAX_COUNT)
    artist_gap = StrictIntegerField(
        required=False, default=3, min_value=0, max_value=similar.MAX_ARTIST_GAP
    )
    per_album = StrictIntegerField(
        required=False, default=2, min_value=0, max_value=similar.MAX_PER_ALBUM
    )
    # Bounds, mood words and tiers are checked by sonic.similar.instant_mix (400).
    min_duration = StrictFloatField(
        required=False, default=60.0, allow_null=True, help_text="Seconds, at most max_duration."
    )
    max_duration = StrictFloatField(required=False, default=900.0, allow_null=True)
    include_seeds = StrictBooleanField(
        required=False,
        default=True,
        help_text="Put the seed tracks named first (an album's or artist's tracks, "
        "the query, pass the filters like any other); false leaves them all out.",
    )
    mood = StrictCharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=100,
        help_text="A mood word of the library (blank: any).",
    )
    tier = StrictCharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=50,
        help_text=f"The mood's tier or mood set: {', '.join(similar.MOOD_TIERS)} (regular).",
    )
    action = serializers.ChoiceField(choices=delivery.ACTIONS, required=False, default="json")
    name = StrictCharField(required=False, default="", max_length=200)


class PathRequestSerializer(serializers.Serializer):
    start = TrackRefSerializer()
    end = TrackRefSerializer()
    steps = StrictIntegerField(required=False, default=10, min_value=2, max_value=similar.MAX_STEPS)
    action = serializers.ChoiceField(choices=delivery.ACTIONS, required=False, default="json")
    name = StrictCharField(required=False, default="", max_length=200)


# --- what goes out ------------------------------------------------------------------------


class TrackSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    path = serializers.CharField()
    title = serializers.CharField()
    artist = serializers.CharField()
    album = serializers.CharField()
    duration = serializers.FloatField(allow_null=True)
    url = serializers.SerializerMethodField()

    def get_url(self, file) -> str:
        return reverse("library:file", args=[file.pk])


class MatchSerializer(TrackSerializer):
    similarity = serializers.FloatField()


class SimilarResponseSerializer(serializers.Serializer):
    track = TrackSerializer()
    similar = MatchSerializer(many=True)


class TracksResponseSerializer(serializers.Serializer):
    tracks = TrackSerializer(many=True)
    detail = serializers.CharField(required=False)


def track_data(file: LibraryFile, score: float | None = None) -> dict:
    data = TrackSerializer(file).data
    if score is not None:
        data["similarity"] = round(score, 4)
    return data


# --- the common steps ----------------------------------------------------------------------


def find(ref: dict) -> LibraryFile:
    """The library file a reference names, or the API error that says why not."""
    raw_path = ref.get("path") or ""
    try:
        if raw_path:
            return tracks.find(path=str(library_path(raw_path)))
        return tracks.find(file_id=ref.get("id"), mbid=ref.get("mbid") or "")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    except tracks.NotInLibrary as exc:
        if exc.path is not None:
            raise NotAnalysedError(
                str(exc), path=str(exc.path), stale=False, queue=_queue_hint(str(exc.path))
            ) from None
        raise FileNotInLibrary(str(exc)) from None


def _queue_hint(path: str) -> dict:
    return {"method": "POST", "url": reverse("api:tag"), "body": {"path": path}}


def answering(call):
    """Run a similar.* call, turning its refusals into API errors."""
    try:
        return call()
    except similar.NotAnalysed as exc:
        raise NotAnalysedError(
            str(exc), path=exc.file.path, stale=exc.stale, queue=_queue_hint(exc.file.path)
        ) from None
    except similar.EmptyLibrary as exc:
        raise EmptyLibraryError(str(exc)) from None
    except similar.UnknownBackbone as exc:
        raise Misconfigured(str(exc), backbone=exc.name, installed=exc.installed) from None
    except similar.SonicError as exc:
        raise BadRequest(str(exc)) from None


def playlist_answer(action: str, name: str, found: list[LibraryFile], default_name: str):
    if action == "m3u8":
        return delivery.m3u8_download(name or default_name, found)
    body = {"tracks": [track_data(f) for f in found]}
    if action in ("write", "push"):
        try:
            body["detail"] = delivery.deliver(action, name or default_name, found)
        except delivery.DeliveryError as exc:
            raise DeliveryFailed(str(exc)) from None
    return Response(body)


NOT_FOUND = OpenApiResponse(
    ErrorSerializer,
    description="No such track (file_not_found), not analysed with the current models "
    "(not_analysed, with `stale` and `queue`), or nothing analysed (empty_library).",
)


MISCONFIGURED = OpenApiResponse(
    ErrorSerializer,
    description="NOMARR_SIMILAR_BACKBONE names no installed backbone (misconfigured, with "
    "`backbone` and `installed`).",
)


def playlist_responses(outside: str) -> dict:
    """The answers of a view that builds a playlist (a mix, a path)."""
    return {
        200: TracksResponseSerializer,
        **errors(400, 401),
        403: OpenApiResponse(ErrorSerializer, description=outside),
        404: NOT_FOUND,
        409: OpenApiResponse(ErrorSerializer, description="Writing or pushing failed."),
        503: MISCONFIGURED,
    }


class SimilarView(NomarrView):
    @extend_schema(
        summary="Tracks that sound like one track",
        parameters=[SimilarParamsSerializer],
        responses={
            200: SimilarResponseSerializer,
            **errors(400, 401),
            403: OpenApiResponse(ErrorSerializer, description="Path outside the library roots."),
            404: NOT_FOUND,
            503: MISCONFIGURED,
        },
        tags=["sonic"],
    )
    def get(self, request):
        params = validated(SimilarParamsSerializer, request.query_params)
        file = find(params)
        found = answering(lambda: similar.similar(file, params["count"]))
        return Response(
            {"track": track_data(file), "similar": [track_data(m.file, m.score) for m in found]}
        )


class MixView(NomarrView):
    @extend_schema(
        summary="An instant mix from seed tracks, an album or an artist",
        description=(
            "`count` tracks that sound like the seeds, with no artist twice within "
            "`artist_gap` tracks, at most `per_album` of one album, durations within the "
            "bounds, and only tracks carrying `mood` (at `tier`) when given. `action`: "
            "json (the tracks), m3u8 (a playlist file to download), write (into "
            "NOMARR_PLAYLIST_DIR) or push (to Navidrome), as playlist `name`."
        ),
        request=MixRequestSerializer,
        responses=playlist_responses("A seed outside the library."),
        tags=["sonic"],
    )
    def post(self, request):
        params = validated(MixRequestSerializer, request.data)
        seeds = [find(ref) for ref in params["seeds"]]
        found = answering(lambda: similar.instant_mix(params, seeds))
        return playlist_answer(params["action"], params["name"], found, "Nomarr instant mix")


class PathView(NomarrView):
    @extend_schema(
        summary="A sonic path from one track to another",
        request=PathRequestSerializer,
        responses=playlist_responses("A track outside the library."),
        tags=["sonic"],
    )
    def post(self, request):
        params = validated(PathRequestSerializer, request.data)
        start, end = find(params["start"]), find(params["end"])
        found = answering(lambda: similar.path(start, end, params["steps"]))
        return playlist_answer(params["action"], params["name"], found, "Nomarr sonic path")
