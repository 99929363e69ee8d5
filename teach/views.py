"""Teach pages: the taught tags, one tag's examples and training, marks, genre suggestions.

Each view validates its form, calls one function of teach.examples, teach.learning,
teach.heads or teach.genres, and renders. Every person logged in sees them; only
staff act (nomarr_site/roles.py): teaching writes tags into every analysed file.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from library.models import LibraryFile
from nomarr_site import confirm
from sonic.index import search_backbone
from teach import examples, genres, heads, learning, tasks
from teach.models import Example, TaughtTag

EXAMPLES_ON_PAGE = 200


class NewTagForm(forms.Form):
    name = forms.CharField(max_length=learning.NAME_LENGTH, label="Name (e.g. workout)")
    description = forms.CharField(max_length=300, required=False)

    def clean_name(self):
        try:
            return learning.check_name(self.cleaned_data["name"])
        except learning.TeachError as exc:
            raise forms.ValidationError(str(exc)) from None


SIDES = [("yes", "yes: it is"), ("no", "no: it is not")]


class SourceForm(forms.Form):
    source = forms.ChoiceField(choices=list(examples.SOURCES.items()))
    where = forms.CharField(
        max_length=200000,
        label="Folder, playlist path or text, Navidrome playlist, tag, or how many",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    value = forms.CharField(max_length=500, required=False, label="Tag value (for a tag)")
    side = forms.ChoiceField(choices=SIDES, initial="yes")


def index(request: HttpRequest) -> HttpResponse:
    """The taught tags; staff make a new one (POST)."""
    form = NewTagForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        tag = TaughtTag.objects.create(
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            created_by=request.user,
        )
        messages.success(request, f"{tag.name} made: now mark tracks yes and no.")
        return redirect("teach:tag", name=tag.name)
    status = 400 if form.is_bound else 200
    tags = TaughtTag.objects.all()
    return render(request, "teach/index.html", {"form": form, "tags": tags}, status=status)


def _tag_context(tag: TaughtTag) -> dict:
    marked = tag.examples.select_related("file").order_by("-positive", "file__path")
    return {
        "tag": tag,
        "examples": marked[:EXAMPLES_ON_PAGE],
        "counts": {
            "yes": tag.examples.filter(positive=True).count(),
            "no": tag.examples.filter(positive=False).count(),
        },
        "source_form": SourceForm(),
        "keys": learning.tag_keys(tag.name, tag.backbone or search_backbone()),
        "min_per_side": learning.MIN_PER_SIDE,
    }


def tag_page(request: HttpRequest, name: str) -> HttpResponse:
    """One taught tag: its examples, where to take more from, train, write, save."""
    tag = get_object_or_404(TaughtTag, name=name)
    if request.method == "POST" and request.POST.get("action") == "delete":
        tag.delete()
        messages.success(
            request,
            f"{name} forgotten (tags already written stay in the files until they are "
            "tagged again).",
        )
        return redirect("teach:index")
    return render(request, "teach/tag.html", _tag_context(tag))


@require_POST
def add_examples(request: HttpRequest, name: str) -> HttpResponse:
    """Examples from a folder, a playlist, Navidrome, a tag value or at random."""
    tag = get_object_or_404(TaughtTag, name=name)
    form = SourceForm(request.POST)
    if not form.is_valid():
        context = {**_tag_context(tag), "source_form": form}
        return render(request, "teach/tag.html", context, status=400)
    d = form.cleaned_data
    positive = d["side"] == "yes"
    try:
        added = examples.add_from(tag, d["source"], positive, d["where"], d["value"])
    except examples.ExampleError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, added.summary(positive))
    return redirect("teach:tag", name=tag.name)


@require_POST
def train(request: HttpRequest, name: str) -> HttpResponse:
    """Learn the tag and show the preview; nothing is written."""
    tag = get_object_or_404(TaughtTag, name=name)
    context = _tag_context(tag)
    try:
        context["preview"] = learning.train(tag)
    except learning.TeachError as exc:
        context["problem"] = str(exc)
        return render(request, "teach/tag.html", context, status=400)
    return render(request, "teach/tag.html", context)


@require_POST
def apply(request: HttpRequest, name: str) -> HttpResponse:
    """Have the workers write the tag learned last into every analysed file."""
    tag = get_object_or_404(TaughtTag, name=name)
    try:
        tasks.start_writing(tag)
    except learning.TeachError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{tag.name} is being written into every analysed file.")
    return redirect("teach:tag", name=tag.name)


@require_POST
def save_head(request: HttpRequest, name: str) -> HttpResponse:
    """Save the tag as an Essentia head in the models folder, for the files tagged next."""
    tag = get_object_or_404(TaughtTag, name=name)
    try:
        path = heads.save_head(tag)
    except learning.TeachError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"saved as the model {path.name}; the workers reload their models."
        )
    return redirect("teach:tag", name=tag.name)


def _answer(value: str) -> bool | None:
    return {"yes": True, "no": False}.get(value)


def mark(request: HttpRequest, file_id: int) -> HttpResponse:
    """A file's marks: the region on the file page and in search results; POST marks."""
    file = get_object_or_404(LibraryFile, pk=file_id)
    if request.method == "POST":
        tag = TaughtTag.objects.filter(name=request.POST.get("tag", "")).first()
        answer = request.POST.get("answer", "")
        if tag is None or answer not in ("yes", "no", "clear"):
            return HttpResponse("Pick a taught tag and yes, no or clear.", status=400)
        examples.mark(tag, file, _answer(answer))
        if not request.htmx:
            back = request.POST.get("next", "")
            if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
                back = reverse("library:file", args=[file.pk])
            return redirect(back)
    marks = {e.tag_id: e.positive for e in Example.objects.filter(file=file).select_related("tag")}
    tags = [(tag, marks.get(tag.pk)) for tag in TaughtTag.objects.all()]
    context = {"file": file, "tags": tags, "compact": request.GET.get("compact") == "1"}
    if request.POST.get("compact") == "1":
        context["compact"] = True
    template = "teach/_mark.html" if request.htmx else "teach/mark.html"
    return render(request, template, context)


GENRE_QUESTION = (
    "Write each suggested genre into the GENRE tag of the files that have none? Files "
    "with a genre keep theirs; GENRE is the files' own tag, shown by every player."
)


def genre_suggestions(request: HttpRequest) -> HttpResponse:
    """Genres learned from the library's own GENRE values: preview (GET), write (POST:
    the suggestion key; with genre=yes, asked first, into GENRE too where it is empty)."""
    context: dict = {"key": genres.suggested_key()}
    into_genre = request.method == "POST" and request.POST.get("genre") == "yes"
    if into_genre and not confirm.confirmed(request):
        return confirm.ask(request, GENRE_QUESTION, "Yes, write GENRE", reverse("teach:genres"))
    if request.method == "POST" or request.GET.get("preview"):
        try:
            found = genres.learn()
        except learning.TeachError as exc:
            context["problem"] = str(exc)
            return render(request, "teach/genres.html", context, status=400)
        context["found"], context["sample"] = found, found.sample()
        if request.method == "POST":
            written = genres.write(found, genre=into_genre)
            messages.success(
                request,
                f"{genres.suggested_key()} written into {written.written} files without a genre"
                + (
                    f"; GENRE written into {written.filled} of them (the others have one)"
                    if into_genre
                    else ""
                )
                + (f"; {len(written.failed)} failed" if written.failed else ""),
            )
            return redirect("teach:genres")
    return render(request, "teach/genres.html", context)
