"""Sonic pages: similar tracks of a file, instant mix, sonic path, library map, duplicates.

Each view validates its form, calls one function of sonic.similar (or sonic.deliver),
and renders; the roles (nomarr_site/roles.py) let every person logged in use them.
The mix and path pages preview and download on GET; writing into the playlist folder
or pushing to Navidrome changes something, so it is done on a POST alone (Django's
CSRF check guards it): a link that asks for it writes nothing. What a mix may be
(bounds, mood words, tiers) is sonic.similar's to check, as for the API."""

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


def find_track(text: str) -> LibraryFile:
    """The library file a library file id or a path inside the library names."""
    try:
        return tracks.named(text)
    except (OutsideLibrary, tracks.NotInLibrary, OSError) as exc:
        raise forms.ValidationError(str(exc)) from None


class TrackField(forms.CharField):
    """A track as a library file id or a path inside the library."""

    def clean(self, value):
        value = super().clean(value)
        return find_track(value) if value else None


class TracksField(forms.CharField):
    """Tracks as library file ids or paths inside the library, one per line or
    separated by commas (a line that is itself a track's path is taken whole, so a
    path with a comma in it works too); each once, in the order given."""

    widget = forms.Textarea(attrs={"rows": 2, "cols": 40})

    def clean(self, value):
        value = super().clean(value)
        found: dict[int, LibraryFile] = {}
        for line in (value or "").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                named = [find_track(line)]
            except forms.ValidationError:
                if "," not in line:
                    raise
                named = [find_track(part.strip()) for part in line.split(",") if part.strip()]
            for file in named:
                found.setdefault(file.pk, file)
        if len(found) > similar.MAX_COUNT:
            raise forms.ValidationError(f"at most {similar.MAX_COUNT} seed tracks")
        return list(found.values())


ACTION_CHOICES = [
    ("preview", "Preview"),
    ("m3u8", "Download .m3u8"),
    ("write", "Write into the playlist folder"),
    ("push", "Push to Navidrome"),
]
#: The actions that change something: on a POST alone.
CHANGING = ("write", "push")


def _mood_choices() -> list[tuple[str, str]]:
    return [("", "any"), *((word, word) for word in analytics.mood_words())]


class BuilderForm(forms.Form):
    """What the mix and path forms share: the playlist's name and what to do with it.
    `posted`: the form came in a POST (write and push need one)."""

    name = forms.CharField(required=False, max_length=200)
    action = forms.ChoiceField(choices=ACTION_CHOICES, required=False)

    def __init__(self, *args, posted: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.posted = posted

    def clean_action(self):
        action = self.cleaned_data.get("action") or "preview"
        if action in CHANGING and not self.posted:
            raise forms.ValidationError(
                "Writing or pushing a playlist takes the Write or Push button under the "
                "preview (a POST); a link cannot do it."
            )
        return action


class MixForm(BuilderForm):
    seed = TracksField(
        required=False, label="Seed tracks (ids or paths, one per line or comma-separated)"
    )
    artist = forms.CharField(required=False, max_length=500)
    album = forms.CharField(required=False, max_length=500)
    count = forms.IntegerField(initial=25, min_value=1, max_value=similar.MAX_COUNT)
    artist_gap = forms.IntegerField(initial=3, label="Artist gap")
    per_album = forms.IntegerField(initial=2, label="Per album")
    min_duration = forms.FloatField(required=False, initial=60, label="Min s")
    max_duration = forms.FloatField(required=False, initial=900, label="Max s")
    include_seeds = forms.BooleanField(required=False, initial=True)
    # Offered as lists; what they may be is sonic.similar's to check (a message).
    mood = forms.CharField(required=False, max_length=100)
    tier = forms.CharField(
        required=False,
        max_length=50,
        widget=forms.Select(choices=[("", "regular"), *((t, t) for t in similar.MOOD_TIERS)]),
    )
    field_order = [
        "seed", "artist", "album", "count", "artist_gap", "per_album", "min_duration",
        "max_duration", "include_seeds", "mood", "tier", "name", "action",
    ]  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mood"].widget = forms.Select(choices=_mood_choices())
        self.fields["name"].initial = "Nomarr instant mix"


class PathForm(BuilderForm):
    start = TrackField(label="From (id or path)")
    end = TrackField(label="To (id or path)")
    steps = forms.IntegerField(initial=10, min_value=2, max_value=similar.MAX_STEPS)
    field_order = ["start", "end", "steps", "name", "action"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].initial = "Nomarr sonic path"


def _playlist(request, action: str, name: str, found: list[LibraryFile]) -> HttpResponse | None:
    """The download, or the write/push done and said in a message (None: render the page)."""
    if action == "m3u8":
        return delivery.m3u8_download(name, found)
    if action in CHANGING and request.method == "POST":  # the form refused it otherwise
        try:
            messages.success(request, delivery.deliver(action, name, found))
        except delivery.DeliveryError as exc:
            messages.error(request, str(exc))
    return None


def _builder(request, form, template: str, build, default_name: str) -> HttpResponse:
    """The mix or path page: the form, the tracks build(cleaned data) gives, and the
    download, write or push asked for."""
    context: dict = {"form": form, **overview()}
    status = 400 if form.is_bound and not form.is_valid() else 200
    if form.is_bound and form.is_valid():
        d = form.cleaned_data
        try:
            context["tracks"] = found = build(d)
        except similar.SonicError as exc:
            context["problem"] = str(exc)
            status = 200 if isinstance(exc, similar.NOT_READY) else 400
        else:
            answer = _playlist(request, d["action"], d["name"] or default_name, found)
            if answer is not None:
                return answer
    return render(request, template, context, status=status)


def mix(request: HttpRequest) -> HttpResponse:
    """The instant mix form (GET previews and downloads, POST writes or pushes)."""
    posted = request.method == "POST"
    data = request.POST if posted else request.GET
    # A link from a file page names the seed only: show the form with it filled in.
    form = MixForm(
        data if "count" in data else None,
        initial={"seed": request.GET.get("seed", "")},
        posted=posted,
    )

    def build(d):
        return similar.instant_mix(d, d["seed"] or [])

    return _builder(request, form, "sonic/mix.html", build, "Nomarr instant mix")


def path(request: HttpRequest) -> HttpResponse:
    """The sonic path form: from one track to another in N steps."""
    posted = request.method == "POST"
    data = request.POST if posted else request.GET
    # A file page's link names the start only.
    form = PathForm(
        data if "end" in data else None,
        initial={"start": request.GET.get("start", "")},
        posted=posted,
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
