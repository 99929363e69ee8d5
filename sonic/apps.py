from django.apps import AppConfig


class SonicConfig(AppConfig):
    """Sonic similarity: the embeddings the backbones produce, kept and searched.

    ready() connects `library.signals.file_refreshed`, sent inside the transaction
    that refreshes a tagged file's library rows, so the file's embeddings are stored
    in that same transaction."""

    name = "sonic"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from library.signals import file_refreshed
        from sonic.storage import store_on_refresh

        file_refreshed.connect(store_on_refresh, dispatch_uid="nomarr-sonic-store")
