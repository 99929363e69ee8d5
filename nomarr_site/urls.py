"""Nomarr's URLs: pages of each app, the API under /api/v1/, and the Django admin."""

from django.contrib import admin
from django.urls import include, path

from nomarr_site import health, metrics

urlpatterns = [
    path("", include("tagging.urls")),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("sonic.api_urls")),  # before tagging's, which ends in a catch-all 404
    path("api/v1/", include("tagging.api_urls")),
    path("library/", include("library.urls")),
    path("playlists/", include("playlists.urls")),
    path("sonic/", include("sonic.urls")),
    path("teach/", include("teach.urls")),
    path("health", health.health, name="health"),
    path("metrics", metrics.metrics, name="metrics"),
]

# What no view answered: JSON under /api/, a page with a message elsewhere.
handler400 = "nomarr_site.errors.bad_request"
handler403 = "nomarr_site.errors.permission_denied"
handler404 = "nomarr_site.errors.page_not_found"
handler500 = "nomarr_site.errors.server_error"
