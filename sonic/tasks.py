"""django-q2 task functions of sonic: the library map, and embedding files for `manage.py embed`."""

from __future__ import annotations

from sonic import embedding, libmap


def build_map() -> int:
    return libmap.build()


def embed_files(file_ids: list[int]) -> int:
    return embedding.embed_files(file_ids)
