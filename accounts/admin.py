"""Admin pages for accounts: API keys and login sessions.

djangorestframework-api-key registers its APIKey model itself (create, revoke; the
key is shown once on creation). Sessions are listed here so a staff member can see
who is logged in and end a session by deleting it."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["short_key", "user", "expire_date"]
    list_filter = ["expire_date"]
    ordering = ["-expire_date"]
    fields = ["short_key", "user", "expire_date"]
    readonly_fields = fields

    @admin.display(description="session")
    def short_key(self, obj: Session) -> str:
        # Enough to tell sessions apart (the full key is the object's id in the URL;
        # only superusers and staff with the view permission see this page).
        return f"{obj.session_key[:8]}…"

    @admin.display(description="user")
    def user(self, obj: Session) -> str:
        user_id = obj.get_decoded().get("_auth_user_id")
        if user_id is None:
            return "(anonymous)"
        user = get_user_model().objects.filter(pk=user_id).first()
        return str(user) if user else f"(deleted user {user_id})"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
