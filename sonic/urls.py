"""Sonic pages, under /sonic/."""

from django.urls import path

from sonic import views

app_name = "sonic"

urlpatterns = [
    path("similar/<int:file_id>/", views.file_similar, name="similar"),
    path("mix/", views.mix, name="mix"),
    path("path/", views.path, name="path"),
    path("map/", views.library_map, name="map"),
    path("map/points", views.map_data, name="map-points"),
    path("duplicates/", views.duplicates, name="duplicates"),
]
