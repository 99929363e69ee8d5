from django.apps import AppConfig


class SonicConfig(AppConfig):
    """Sonic similarity: the embeddings the backbones produce, kept and searched.

    ready() connects:

    * `library.signals.file_refreshed`, sent inside the transaction that refreshes a
      tagged file's library rows, so the file's embeddings are stored in that same
      transaction (sonic/storage.py);
    * `library.signals.autotag_checked`, sent when a scan's auto-tag step is done, to
      request embeddings for the tagged files that have none (sonic/embedding.py);
    * `tagging.signals.workers_started`, to send the open embed requests again.
    """

    name = "sonic"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from library.signals import autotag_checked, file_refreshed
        from sonic.embedding import embed_after_scan, redispatch
        from sonic.storage import store_on_refresh
        from tagging.signals import workers_started

        file_refreshed.connect(store_on_refresh, dispatch_uid="nomarr-sonic-store")
        autotag_checked.connect(embed_after_scan, dispatch_uid="nomarr-sonic-embed-scan")
        workers_started.connect(redispatch, dispatch_uid="nomarr-sonic-embed-redispatch")
