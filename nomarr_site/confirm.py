"""Destructive actions ask first, with JavaScript or without.

A form for such an action carries `data-confirm="<question>"`: in the browser,
static/js/confirm.js asks the question and, if the answer is yes, adds
`confirm=yes` and sends the form. Without JavaScript the form arrives without it,
and the view answers `ask()`'s page instead: the question, and the same form again
with `confirm=yes` (or a way back). Nothing happens until the POST says yes.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

FIELD = "confirm"


def confirmed(request: HttpRequest) -> bool:
    return request.POST.get(FIELD) == "yes"


def ask(request: HttpRequest, question: str, button: str, back: str) -> HttpResponse:
    """The confirmation page for this POST: its fields posted again with confirm=yes.

    back is where "No" leads (the page the form was on, when it is ours)."""
    referer = request.headers.get("referer", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        back = referer
    fields = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in (FIELD, "csrfmiddlewaretoken")
        for value in values
    ]
    context = {
        "question": question,
        "button": button,
        "action": request.get_full_path(),
        "fields": fields,
        "back": back,
    }
    return render(request, "confirm.html", context)
