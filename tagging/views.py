"""Pages for tagging: dashboard, tag now, one job, the queue and the models.

Who may see and use each page is nomarr_site/roles.py's table (queue control and
reloading the models are for staff)."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from tagging import jobs, live
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
    return render(request, "tagging/dashboard.html", live.dashboard_state())


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
    status = request.GET.get("status", "")
    query = Job.objects.order_by("-pk")
    if status in Job.Status.values:
        query = query.filter(status=status)
    page = Paginator(query, 50).get_page(request.GET.get("page"))
    context = {"page": page, "status": status, "statuses": Job.Status.values}
    context.update(live.dashboard_state())
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


@require_POST
def queue_action(request: HttpRequest) -> HttpResponse:
    action = QUEUE_ACTIONS.get(request.POST.get("action", ""))
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
    if request.method == "POST":
        jobs.refresh_models()
        messages.success(request, "Models reloaded; workers reload before their next job")
        return redirect("models")
    return render(request, "tagging/models.html", {"catalog": get_catalog()})
