from django.apps import AppConfig


class TeachConfig(AppConfig):
    """Teach a tag: a tag the user defines by example tracks, learned from the stored
    embeddings (sonic), written into the files and saved as an Essentia head."""

    name = "teach"
    default_auto_field = "django.db.models.BigAutoField"
