"""Pages for tagging: dashboard, tag now, one job, the queue and the models.

Who may see and use each page is nomarr_site/roles.py's table (queue control and
reloading the models are for staff)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from nomarr_site import confirm
from tagging import jobs, live, zoo
from tagging.boundary import (
    OutsideLibrary,
    Unresolvable,
    library_files,
    library_roots,
    resolve_in_library,
)
from tagging.catalog import get_catalog
from tagging.models import Job


def dashboard(request: HttpRequest) -> HttpResponse:
    context = live.dashboard_state()
    context["mood_heads_installed"] = zoo.mood_heads_installed()
    return render(request, "tagging/dashboard.html", context)


def tag_now(request: HttpRequest) -> HttpResponse:
    """Queue a path typed in (or picked in the library) and follow it live.

    Each file under a folder is checked on its own: one that is a symlink out of the
    library is not queued, and the page says so."""
    path = request.POST.get("path", request.GET.get("path", "")).strip()
    error = ""
    if request.method == "POST":
        try:
            found = library_files([resolve_in_library(path)])
        except OutsideLibrary as exc:
            error = str(exc)
        except FileNotFoundError:
            error = f"no such file or folder: {path}"
        except Unresolvable as exc:
            error = f"cannot open {path}: {exc.strerror}"
        else:
            queued = jobs.queue_paths(found.files, force=request.POST.get("force") == "on")
            refusals = [f"not queued: {refused.detail}" for refused in found.refused]
            if not queued:
                error = "; ".join(refusals) or f"no audio files in {path}"
            elif len(queued) == 1 and not refusals:
                return redirect("job", job_id=queued[0].pk)
            else:
                for refusal in refusals:
                    messages.warning(request, refusal)
                messages.info(request, f"{len(queued)} files queued from {path}")
                return redirect("queue")
    context = {"path": path, "error": error, "roots": library_roots()}
    return render(request, "tagging/tag_now.html", context, status=400 if error else 200)


def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=job_id)
    return render(request, "tagging/job.html", live.job_context(job))


def queue(request: HttpRequest) -> HttpResponse:
    context = live.queue_state(request.GET.get("status", ""), request.GET.get("page"))
    return render(request, "tagging/queue.html", context)


QUEUE_ACTIONS = {
    "pause": lambda post: jobs.set_paused(True) or "Workers paused",
    "resume": lambda post: jobs.set_paused(False) or "Workers resumed",
    "reset_stuck": lambda post: f"{jobs.reset_stuck()} stuck jobs reset",
    "retry_errors": lambda post: f"{jobs.reset_errors()} failed jobs queued again",
    "flush": lambda post: f"{jobs.flush(post.getlist('statuses'))} jobs removed",
    "remove": lambda post: jobs.remove(int(post.get("job", "0"))) or "Job removed",
    "retry": lambda post: (
        f"{jobs.requeue([int(post.get('job', '0'))], Job.Status.ERROR)} job queued again"
    ),
}


#: Actions that delete, and so ask first (nomarr_site/confirm.py): the question.
CONFIRM = {
    "flush": lambda post: (
        "Remove every finished job (done and failed) from the queue? Their files keep their tags."
    ),
    "remove": lambda post: f"Remove job {post.get('job', '')} from the queue?",
}


@require_POST
def queue_action(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("action", "")
    action = QUEUE_ACTIONS.get(name)
    if name in CONFIRM and not confirm.confirmed(request):
        question = CONFIRM[name](request.POST)
        return confirm.ask(request, question, "Yes, remove", back=reverse("queue"))
    if action is None:
        messages.error(request, "Unknown action")
    else:
        try:
            messages.success(request, action(request.POST))
        except (jobs.JobConflict, Job.DoesNotExist, ValueError) as exc:
            messages.error(request, str(exc) or "Invalid request")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "queue"
    return redirect(target or "queue")


def models_page(request: HttpRequest) -> HttpResponse:
    """The models loaded and skipped; staff reload them, or get the mood heads.

    Getting the heads is a short synchronous action (about 0.8 MB, seconds): its result
    is shown at once, a failure leaves nothing installed, and a mirror that does not
    answer stops it after zoo.TIMEOUT, so no background job is needed to follow it."""
    if request.method == "POST":
        if request.POST.get("action") == "download":
            _get_mood_models(request)
        else:
            jobs.refresh_models()
            messages.success(request, "Models reloaded; workers reload before their next job")
        return redirect("models")
    context = {"catalog": get_catalog(), "offer": zoo.offer()}
    return render(request, "tagging/models.html", context)


def _get_mood_models(request: HttpRequest) -> None:
    if request.POST.get("accept_license") != "on":
        messages.error(
            request, "Tick “I accept the licence” to get the mood models; nothing was downloaded"
        )
        return
    try:
        outcome = zoo.download(["moods"])
    except zoo.ZooError as exc:
        messages.error(request, f"{exc}; nothing was downloaded")
        return
    if outcome.installed:
        messages.success(
            request,
            f"Installed {len(outcome.installed)} mood heads ({', '.join(outcome.installed)}); "
            "workers reload before their next job",
        )
    elif outcome.already and not outcome.failed:
        messages.info(request, "The mood models are installed already")
    for stem, why in outcome.failed:
        messages.error(request, f"{stem} not installed: {why}")
