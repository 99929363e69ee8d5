"""Teach pages, under /teach/."""

from django.urls import path

from teach import views

app_name = "teach"

urlpatterns = [
    path("", views.index, name="index"),
    path("genres/", views.genre_suggestions, name="genres"),
    path("mark/<int:file_id>/", views.mark, name="mark"),
    path("tag/<slug:name>/", views.tag_page, name="tag"),
    path("tag/<slug:name>/examples", views.add_examples, name="examples"),
    path("tag/<slug:name>/train", views.train, name="train"),
    path("tag/<slug:name>/apply", views.apply, name="apply"),
    path("tag/<slug:name>/head", views.save_head, name="head"),
]
