from django.contrib import admin, messages
from django.db.models import QuerySet

from tagging import jobs
from tagging.models import Job, WorkerState


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "path", "status", "attempts", "created_at", "finished_at", "error"]
    list_filter = ["status", "force"]
    search_fields = ["path", "error"]
    readonly_fields = ["created_at", "started_at", "finished_at", "worker", "result", "progress"]
    actions = ["retry", "reset", "remove"]

    @admin.action(description="Retry selected failed jobs")
    def retry(self, request, queryset: QuerySet[Job]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        n = jobs.requeue(ids, Job.Status.ERROR)
        self.message_user(request, f"{n} jobs queued again")

    @admin.action(description="Reset selected stuck running jobs")
    def reset(self, request, queryset: QuerySet[Job]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        n = jobs.requeue(ids, Job.Status.RUNNING)
        self.message_user(request, f"{n} jobs put back in the queue")

    @admin.action(description="Remove selected jobs (not running ones)")
    def remove(self, request, queryset: QuerySet[Job]) -> None:
        deleted, running = queryset.remove_unless_running()
        self.message_user(request, f"{deleted} jobs removed")
        if running:
            self.message_user(request, f"{running} running jobs kept", level=messages.WARNING)


@admin.register(WorkerState)
class WorkerStateAdmin(admin.ModelAdmin):
    list_display = ["id", "paused", "models_generation", "updated_at"]
