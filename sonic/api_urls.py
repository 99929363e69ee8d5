"""The sonic API's addresses, under /api/v1/ (see nomarr_site/urls.py)."""

from django.urls import path

from sonic import api

app_name = "sonic-api"

urlpatterns = [
    path("similar", api.SimilarView.as_view(), name="similar"),
    path("mix", api.MixView.as_view(), name="mix"),
    path("path", api.PathView.as_view(), name="path"),
]
