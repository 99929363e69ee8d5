from django.urls import path

from library import views

app_name = "library"

urlpatterns = [
    path("", views.index, name="index"),
    path("file/<int:file_id>/", views.file_detail, name="file"),
    path("file/<int:file_id>/tags/", views.file_tags, name="file-tags"),
    path("file/<int:file_id>/retag/", views.file_retag, name="file-retag"),
    path("scans/", views.scans, name="scans"),
    path("scans/<int:root_id>/", views.scan_action, name="scan-action"),
    path("analytics/", views.analytics_page, name="analytics"),
    path("calibration/", views.calibration_page, name="calibration"),
    path("calibration/action/", views.calibration_action, name="calibration-action"),
    path("calibration/retier/", views.retier_progress, name="retier-progress"),
]
