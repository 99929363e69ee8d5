"""django-q2 task functions of sonic: the library map, the duplicates, and hearing the
files of embed requests (the EmbedRequest table is the truth; a message carries ids)."""

from __future__ import annotations

from sonic import embedding, libmap, similar


def build_map() -> int:
    return libmap.build()


def find_duplicates() -> int:
    return len(similar.find_duplicates())


def embed_requests(request_ids: list[int]) -> int:
    return embedding.run(request_ids)
