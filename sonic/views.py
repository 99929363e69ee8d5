"""Sonic pages: similar tracks of a file, instant mix, sonic path, library map, duplicates.

Each view validates its form, calls one function of sonic.similar (or sonic.deliver),
and renders; the roles (nomarr_site/roles.py) let every person logged in use them."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from library import analytics
from library.models import LibraryFile
from sonic import deliver as delivery
from sonic import embedding, libmap, similar, tracks
from sonic.models import EmbedRequest, TrackEmbedding
from sonic.storage import current_model_set
from tagging import keys
from tagging.boundary import OutsideLibrary

SIMILAR_ON_PAGE = 20


def overview() -> dict:
    """How many files have current, stale or no embeddings, and how many wait to be heard."""
    model_set = current_model_set() or ""
    files = LibraryFile.objects.count()
    current = (
        TrackEmbedding.objects.filter(model_set=model_set).values("file_id").distinct().count()
    )
    stale = (
        TrackEmbedding.objects.exclude(model_set=model_set)
        .exclude(file__embeddings__model_set=model_set)
        .values("file_id")
        .distinct()
        .count()
    )
    waiting = EmbedRequest.objects.filter(status__in=embedding.OPEN).count()
    return {
        "files": files,
        "current": current,
        "stale": stale,
        "missing": files - current - stale,
        "waiting": waiting,
    }


def file_similar(request: HttpRequest, file_id: int) -> HttpResponse:
    """The file's top 20 similar tracks: a region of the file page for htmx, else a page."""
    file = get_object_or_404(LibraryFile, pk=file_id)
    context: dict = {"file": file}
    try:
        context["matches"] = similar.similar(file, SIMILAR_ON_PAGE)
    except similar.SonicError as exc:
        context["problem"] = str(exc)
        context["not_analysed"] = isinstance(exc, similar.NotAnalysed)
    template = "sonic/_similar.html" if request.htmx else "sonic/similar.html"
    return render(request, template, context)


class TrackField(forms.CharField):
    """A track as a library file id or a path inside the library."""

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        try:
            if value.isdigit():
                return tracks.find(file_id=int(value))
            return tracks.find(path=value)
        except OutsideLibrary as exc:
            raise forms.ValidationError(str(exc)) from None
        except (tracks.NotInLibrary, OSError) as exc:
            raise forms.ValidationError(str(exc)) from None


ACTION_CHOICES = [
    ("preview", "Preview"),
    ("m3u8", "Download .m3u8"),
    ("write", "Write into the playlist folder"),
    ("push", "Push to Navidrome"),
]


def _mood_choices() -> list[tuple[str, str]]:
    return [("", "any"), *((word, word) for word in analytics.mood_words())]


class MixForm(forms.Form):
    seed = TrackField(required=False, label="Seed track (id or path)")
    artist = forms.CharField(required=False, max_length=500)
    album = forms.CharField(required=False, max_length=500)
    count = forms.IntegerField(initial=25, min_value=1, max_value=similar.MAX_COUNT)
    artist_gap = forms.IntegerField(initial=3, min_value=0, max_value=50, label="Artist gap")
    per_album = forms.IntegerField(initial=2, min_value=0, max_value=100, label="Per album")
    min_duration = forms.FloatField(required=False, initial=60, min_value=0, label="Min s")
    max_duration = forms.FloatField(required=False, initial=900, min_value=0, label="Max s")
    include_seeds = forms.BooleanField(required=False, initial=True)
    mood = forms.ChoiceField(required=False)
    tier = forms.ChoiceField(
        required=False,
        choices=[("", "regular"), *((t, t) for t in keys.TIERS), *((n, n) for n in keys.MOOD_SETS)],
    )
    name = forms.CharField(required=False, max_length=200, initial="Nomarr instant mix")
    action = forms.ChoiceField(choices=ACTION_CHOICES, initial="preview")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mood"].choices = _mood_choices()

    def clean(self):
        data = super().clean()
        if not (data.get("seed") or data.get("artist") or data.get("album")):
            raise forms.ValidationError("Give a seed track, an artist or an album.")
        return data


class PathForm(forms.Form):
    start = TrackField(label="From (id or path)")
    end = TrackField(label="To (id or path)")
    steps = forms.IntegerField(initial=10, min_value=2, max_value=similar.MAX_STEPS)
    name = forms.CharField(required=False, max_length=200, initial="Nomarr sonic path")
    action = forms.ChoiceField(choices=ACTION_CHOICES, initial="preview")


def _playlist(request, action: str, name: str, found: list[LibraryFile]) -> HttpResponse | None:
    """The download, or the write/push done and said in a message (None: render the page)."""
    if action == "m3u8":
        return delivery.m3u8_download(name, found)
    if action in ("write", "push"):
        try:
            messages.success(request, delivery.deliver(action, name, found))
        except delivery.DeliveryError as exc:
            messages.error(request, str(exc))
    return None


def _builder(request, form, template: str, build, default_name: str) -> HttpResponse:
    """The mix or path page: the form, the tracks build(cleaned data) gives, and the
    download, write or push asked for."""
    context: dict = {"form": form, **overview()}
    if form.is_bound and form.is_valid():
        d = form.cleaned_data
        try:
            context["tracks"] = found = build(d)
        except similar.SonicError as exc:
            context["problem"] = str(exc)
        else:
            answer = _playlist(request, d["action"], d["name"] or default_name, found)
            if answer is not None:
                return answer
    status = 400 if form.is_bound and not form.is_valid() else 200
    return render(request, template, context, status=status)


def mix(request: HttpRequest) -> HttpResponse:
    """The instant mix form (GET previews and downloads, POST writes or pushes)."""
    data = request.POST if request.method == "POST" else request.GET
    # A link from a file page names the seed only: show the form with it filled in.
    form = MixForm(data if "count" in data else None, initial={"seed": request.GET.get("seed", "")})

    def build(d):
        return similar.instant_mix(d, [d["seed"]] if d["seed"] else [])

    return _builder(request, form, "sonic/mix.html", build, "Nomarr instant mix")


def path(request: HttpRequest) -> HttpResponse:
    """The sonic path form: from one track to another in N steps."""
    data = request.POST if request.method == "POST" else request.GET
    # A file page's link names the start only.
    form = PathForm(
        data if "end" in data else None, initial={"start": request.GET.get("start", "")}
    )

    def build(d):
        return similar.path(d["start"], d["end"], d["steps"])

    return _builder(request, form, "sonic/path.html", build, "Nomarr sonic path")


def library_map(request: HttpRequest) -> HttpResponse:
    """Every analysed track as a point (the map is computed by the workers, cached)."""
    colour = request.GET.get("colour", "")
    return render(
        request,
        "sonic/map.html",
        {
            "state": libmap.state(),
            "colour": colour,
            "colours": libmap.colour_choices(),
            **overview(),
        },
    )


def map_data(request: HttpRequest) -> JsonResponse:
    """The cached map's points, coloured by ?colour= (a mood word, genre, year or tier)."""
    found = libmap.points(request.GET.get("colour", ""))
    if found is None:
        libmap.request_build()
        return JsonResponse({"ready": False, "detail": "the map is being computed"}, status=202)
    return JsonResponse({"ready": True, **found})


def duplicates(request: HttpRequest) -> HttpResponse:
    """Tracks whose embeddings and durations nearly coincide (Nomarr deletes nothing)."""
    context: dict = {}
    try:
        context["pairs"] = similar.known_duplicates()
        context["looking"] = context["pairs"] is None
    except similar.SonicError as exc:
        context["problem"] = str(exc)
    return render(request, "sonic/duplicates.html", context)
