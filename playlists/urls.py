from django.urls import path

from playlists import views

app_name = "playlists"

urlpatterns = [
    path("", views.index, name="index"),
    path("navidrome/", views.navidrome_config, name="navidrome_config"),
]
