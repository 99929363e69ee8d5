"""django-q2 task functions of sonic: the library map, and embedding files for `manage.py embed`."""

from __future__ import annotations

from sonic import embedding, libmap, similar


def build_map() -> int:
    return libmap.build()


def find_duplicates() -> int:
    return len(similar.find_duplicates())


def embed_files(file_ids: list[int]) -> int:
    return embedding.embed_files(file_ids)
