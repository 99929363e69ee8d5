"""Library admin: roots are edited here (seeded from NOMARR_LIBRARY_ROOTS); scans can be
started and cancelled; files and their tags can be browsed."""

from django.contrib import admin, messages
from django.db.models import QuerySet

from library import scanning, tasks
from library.models import LibraryFile, LibraryRoot, Scan, TagValue
from library.roots import sync_settings_roots


@admin.register(LibraryRoot)
class LibraryRootAdmin(admin.ModelAdmin):
    list_display = ["name", "path", "enabled", "auto_tag", "from_settings", "last_scan"]
    list_filter = ["enabled", "auto_tag", "from_settings"]
    search_fields = ["name", "path"]
    readonly_fields = ["from_settings", "created_at", "updated_at"]
    actions = ["scan_now", "full_scan_now", "cancel_scan"]

    def changelist_view(self, request, extra_context=None):
        sync_settings_roots()  # so roots named in the settings show up here
        return super().changelist_view(request, extra_context)

    @admin.display(description="last scan")
    def last_scan(self, root: LibraryRoot) -> str:
        scan = root.scans.first()
        return str(scan) if scan else "-"

    def _queue(self, request, queryset: QuerySet[LibraryRoot], full: bool) -> None:
        started = 0
        for root in queryset:
            try:
                tasks.start_scan(root, full=full, trigger="admin")
            except scanning.ScanRefused as exc:
                self.message_user(request, str(exc), level=messages.WARNING)
            else:
                started += 1
        self.message_user(request, f"{started} scans handed to the workers")

    @admin.action(description="Scan selected roots now")
    def scan_now(self, request, queryset: QuerySet[LibraryRoot]) -> None:
        self._queue(request, queryset, full=False)

    @admin.action(description="Full scan (re-read every file) of selected roots")
    def full_scan_now(self, request, queryset: QuerySet[LibraryRoot]) -> None:
        self._queue(request, queryset, full=True)

    @admin.action(description="Cancel running scans of selected roots")
    def cancel_scan(self, request, queryset: QuerySet[LibraryRoot]) -> None:
        n = sum(scanning.cancel_scans(root) for root in queryset)
        self.message_user(request, f"{n} running scans asked to stop")


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "root",
        "status",
        "trigger",
        "started_at",
        "finished_at",
        *Scan.COUNTERS,
    ]
    list_filter = ["status", "root", "full"]
    readonly_fields = [f.name for f in Scan._meta.fields]
    actions = ["cancel"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Cancel selected running scans")
    def cancel(self, request, queryset: QuerySet[Scan]) -> None:
        n = queryset.cancel()
        self.message_user(request, f"{n} running scans asked to stop")
        if not n:
            self.message_user(request, "none of them was running", level=messages.WARNING)


class TagValueInline(admin.TabularInline):
    model = TagValue
    fields = ["key", "value", "number"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LibraryFile)
class LibraryFileAdmin(admin.ModelAdmin):
    list_display = ["path", "format", "artist", "album", "title", "nom_version", "error"]
    list_filter = ["root", "format"]
    search_fields = ["path", "title", "artist", "album", "album_artist"]
    readonly_fields = [f.name for f in LibraryFile._meta.fields]
    inlines = [TagValueInline]

    def has_add_permission(self, request) -> bool:
        return False
