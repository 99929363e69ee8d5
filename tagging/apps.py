from django.apps import AppConfig


class TaggingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tagging"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        post_spawn.connect(recover_on_worker_start, dispatch_uid="nomarr-recover")


def recover_on_worker_start(sender, proc_name: str, **kwargs) -> None:
    """A worker process just started (at launch, or replacing one that died, even by
    kill -9): put back the jobs that dead workers on this host left running."""
    import logging

    from tagging import jobs

    try:
        jobs.reset_stuck()
    except Exception:  # a worker must start even if the database hiccups
        logging.getLogger(__name__).exception("could not reset stuck jobs")
