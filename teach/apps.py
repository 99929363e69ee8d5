from django.apps import AppConfig


class TeachConfig(AppConfig):
    """Teach a tag: a tag the user defines by example tracks, learned from the stored
    embeddings (sonic), written into the files and saved as an Essentia head."""

    name = "teach"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """A re-tag by the pipeline keeps the taught tags' keys (tagging.signals)."""
        from tagging.signals import retag_keeps
        from teach.learning import owned_keys

        retag_keeps.connect(owned_keys, dispatch_uid="nomarr-teach-owned-keys")
