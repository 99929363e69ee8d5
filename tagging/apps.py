from django.apps import AppConfig


class TaggingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tagging"

    def ready(self) -> None:
        from tagging import watchdog

        # In the worker processes: note what each is doing for the watchdog, and put
        # back the jobs of dead workers whenever a worker starts.
        watchdog.connect()
