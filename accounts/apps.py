from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        from accounts.bootstrap import announce_first_admin
        from tagging.signals import serve_starting

        serve_starting.connect(announce_first_admin, dispatch_uid="accounts.first_admin")
