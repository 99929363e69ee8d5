"""Websocket routes (the web UI's live updates)."""

websocket_urlpatterns: list = []
