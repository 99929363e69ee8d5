from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", views.settings_page, name="account-settings"),
    path("settings/roots/add/", views.root_add, name="account-root-add"),
    path("settings/roots/<int:root_id>/", views.root_update, name="account-root"),
    path("settings/roots/<int:root_id>/state/", views.root_state, name="account-root-state"),
    path("settings/keys/", views.key_action, name="account-keys"),
]
