from django.urls import path

from tagging import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("tag/", views.tag_now, name="tag-now"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("queue/", views.queue, name="queue"),
    path("queue/action/", views.queue_action, name="queue-action"),
    path("models/", views.models_page, name="models"),
]
