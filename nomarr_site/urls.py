"""Nomarr's URLs: pages of each app, the API under /api/v1/, and the Django admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("tagging.urls")),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tagging.api_urls")),
    path("library/", include("library.urls")),
    path("playlists/", include("playlists.urls")),
]
