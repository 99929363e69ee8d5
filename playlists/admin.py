from django.contrib import admin

from playlists.models import WrittenPlaylist


@admin.register(WrittenPlaylist)
class WrittenPlaylistAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "path", "tracks", "written_at"]
    list_filter = ["kind"]
    search_fields = ["name", "path"]
    readonly_fields = ["path", "kind", "name", "rules", "tracks", "sha256", "written_at"]
