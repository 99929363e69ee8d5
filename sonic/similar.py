"""What users get from the embeddings: similar tracks, instant mixes, sonic paths, duplicates.

Every function takes LibraryFile rows and gives LibraryFile rows, and answers in
words when it cannot: `NotAnalysed` (the file has no embedding of the current
model set: never analysed, or analysed by another model set, which is stale and
never mixed with the current one), `EmptyLibrary` (no file has one yet),
`UnknownBackbone` (NOMARR_SIMILAR_BACKBONE names no installed backbone), and a
plain `SonicError` for a request that cannot be met as asked (a count out of its
bounds, an unknown mood word or tier, a minimum duration above the maximum): the
API, the pages and the commands all take these checks from here. The searching
itself is sonic/index.py's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.cache import cache

from library import analytics
from library.models import LibraryFile
from sonic import index as sonic_index
from sonic.models import TrackEmbedding
from sonic.storage import current_model_set
from tagging import keys
from tagging.catalog import current_catalog

#: Bounds of every count a user may ask for (similar tracks, mix length, path steps,
#: a mix's artist gap and tracks per album).
MAX_COUNT = 200
MAX_STEPS = 100
MAX_ARTIST_GAP = 50
MAX_PER_ALBUM = 100


class SonicError(Exception):
    """The request cannot be answered; the message says why."""


class NotAnalysed(SonicError):
    """The file has no embedding of the current model set; `stale` when it has one of another."""

    def __init__(self, file: LibraryFile, stale: bool) -> None:
        self.file, self.stale = file, stale
        if stale:
            message = (
                f"{file.path} was analysed by another model set; its embedding is stale until "
                "it is analysed again (`manage.py embed`, or queue it)"
            )
        else:
            message = (
                f"{file.path} is not analysed yet: queue it for tagging, or run `manage.py embed`"
            )
        super().__init__(message)


class EmptyLibrary(SonicError):
    def __init__(self) -> None:
        super().__init__(
            "no track of the library is analysed with the current models yet: tag some "
            "files (or run `manage.py embed`) first"
        )


class UnknownBackbone(SonicError):
    """NOMARR_SIMILAR_BACKBONE names a backbone the model set does not have (a typo):
    a configuration error, not a file that needs analysing."""

    def __init__(self, name: str, installed: Sequence[str]) -> None:
        self.name, self.installed = name, list(installed)
        super().__init__(
            f"no backbone named {name!r} (installed: {', '.join(installed) or 'none'}): "
            "set NOMARR_SIMILAR_BACKBONE to one of them"
        )


#: Refusals that say the library or the configuration is not ready, not that the
#: request was wrong.
NOT_READY = (NotAnalysed, EmptyLibrary, UnknownBackbone)


@dataclass
class Match:
    file: LibraryFile
    score: float  # cosine similarity, 1 = the same sound


def space() -> tuple[str, str]:
    """(backbone, model set) of the searched embeddings; EmptyLibrary when there are
    none, UnknownBackbone when the searched backbone is not one of the model set's."""
    model_set = current_model_set()
    if not model_set:
        raise EmptyLibrary()
    backbone = sonic_index.search_backbone()
    installed = [one.stem for one in current_catalog().backbones]
    if backbone not in installed:
        raise UnknownBackbone(backbone, installed)
    return backbone, model_set


def index(searched: tuple[str, str] | None = None) -> sonic_index.Index:
    """The index of the searched space (of `searched`, from space(), when given)."""
    backbone, model_set = searched or space()
    found = sonic_index.get_index(backbone, model_set)
    if not len(found):
        raise EmptyLibrary()
    return found


def vector_of(file: LibraryFile, searched: tuple[str, str] | None = None) -> np.ndarray:
    """The file's mean embedding in the searched space (`searched`, from space(), when
    given); NotAnalysed when it has none."""
    backbone, model_set = searched or space()
    row = (
        TrackEmbedding.objects.filter(file=file, backbone=backbone)
        .values_list("model_set", "dims", "vector")
        .first()
    )
    if row is None or row[0] != model_set:
        raise NotAnalysed(file, stale=row is not None)
    mean = np.frombuffer(bytes(row[2]), dtype="<f4", count=row[1])
    return sonic_index.normalise(mean[None, :])[0]


def _files(hits: Iterable[sonic_index.Hit]) -> list[Match]:
    """The hits' files, in order; a file gone since the index last looked is left out."""
    hits = list(hits)
    rows = LibraryFile.objects.in_bulk([hit.file_id for hit in hits])
    return [Match(rows[hit.file_id], hit.score) for hit in hits if hit.file_id in rows]


def similar(file: LibraryFile, count: int = 20) -> list[Match]:
    """The count tracks that sound most like file (not itself), best first."""
    check_count(count, "count", MAX_COUNT)
    searched = space()
    query = vector_of(file, searched)
    found = index(searched)
    return _files(found.search(query, count + 4, exclude={file.pk}))[:count]


def check_count(value: int, name: str, maximum: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise SonicError(f"{name} must be a whole number from {minimum} to {maximum}")


# --- instant mix ------------------------------------------------------------------------


@dataclass
class MixOptions:
    """The filters of an instant mix."""

    count: int = 25
    artist_gap: int = 3  # no track by the same artist within this many tracks
    per_album: int = 2  # at most this many tracks of one album (0: no limit)
    min_duration: float | None = 60.0  # seconds; None: no bound
    max_duration: float | None = 900.0  # keeps 2-hour DJ mixes out
    include_seeds: bool = True
    allowed: set[int] | None = None  # file ids the mix may use (a mood or tier constraint)

    def check(self) -> None:
        """SonicError when a bound is out of range, or the durations exclude every track."""
        check_count(self.count, "count", MAX_COUNT)
        check_count(self.artist_gap, "artist_gap", MAX_ARTIST_GAP, minimum=0)
        check_count(self.per_album, "per_album", MAX_PER_ALBUM, minimum=0)
        for name in ("min_duration", "max_duration"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SonicError(f"{name} must be a number of seconds")
            if not math.isfinite(value) or value < 0:
                raise SonicError(f"{name} must be 0 seconds or more")
        low, high = self.min_duration, self.max_duration
        if low is not None and high is not None and low > high:
            raise SonicError(f"min_duration ({low:g} s) is above max_duration ({high:g} s)")


def _artist(file: LibraryFile) -> str:
    return (file.artist or file.album_artist).strip().casefold()


def _album(file: LibraryFile) -> tuple[str, str]:
    return ((file.album_artist or file.artist).strip().casefold(), file.album.strip().casefold())


def mix(
    seeds: Sequence[LibraryFile], options: MixOptions, around: Sequence[LibraryFile] = ()
) -> list[LibraryFile]:
    """options.count tracks that sound like the seeds and the `around` tracks (an
    album's or an artist's: the mean of them all is the query), the filters kept.

    The seeds the person named come first when included, as named; every other
    track, an album's or an artist's included, is one of the nearest tracks that
    breaks no filter (so an artist's mix spaces the artist's tracks by artist_gap).
    Without include_seeds neither the seeds nor the `around` tracks are used."""
    options.check()
    if not seeds and not around:
        raise SonicError("give a seed track, an album or an artist")
    searched = space()
    # NotAnalysed before EmptyLibrary: the seed named is what the person can fix.
    vectors = [vector_of(file, searched) for file in [*seeds, *around]]
    found = index(searched)
    query = np.mean(vectors, axis=0)
    chosen: list[LibraryFile] = list(seeds) if options.include_seeds else []
    exclude = {file.pk for file in seeds}
    if not options.include_seeds:
        exclude |= {file.pk for file in around}
    wanted = options.count * 20 + 100
    while True:
        matches = _files(found.search(query, wanted, exclude=exclude))
        picked = _pick(matches, chosen, options)
        if len(picked) >= options.count or wanted >= len(found):
            return picked[: options.count]
        wanted *= 4


#: The MixOptions a request (a form, the API, the command) gives by name.
MIX_FIELDS = ("count", "artist_gap", "per_album", "min_duration", "max_duration", "include_seeds")


def instant_mix(params: Mapping[str, Any], seeds: Sequence[LibraryFile] = ()) -> list[LibraryFile]:
    """The mix a request asks for: from the seeds and/or params' album and artist, with
    MixOptions from params (MIX_FIELDS) and its mood and tier constraint, every bound
    checked here (SonicError says which), for the API, the page and the command alike."""
    options = MixOptions(**{name: params[name] for name in MIX_FIELDS})
    options.check()
    options.allowed = allowed_by_mood(params.get("mood", ""), params.get("tier", ""))
    around = tracks_of(params.get("album", ""), params.get("artist", ""))
    return mix(seeds, options, around)


def _pick(matches: list[Match], start: list[LibraryFile], options: MixOptions) -> list[LibraryFile]:
    """start, then the matches (best first) that pass the filters. A track held back
    only by the artist gap waits, and takes the first place the gap allows (before
    any worse match), so an artist's mix spaces the artist's tracks instead of
    losing all but the first."""
    chosen = list(start)
    albums: dict[tuple[str, str], int] = {}
    for file in chosen:
        albums[_album(file)] = albums.get(_album(file), 0) + 1
    # Artist -> its tracks waiting for the gap, best first, with their rank.
    waiting: dict[str, deque[tuple[int, LibraryFile]]] = {}

    def album_full(file: LibraryFile) -> bool:
        album = _album(file)
        return bool(options.per_album and album[1] and albums.get(album, 0) >= options.per_album)

    def place() -> None:
        while len(chosen) < options.count:
            gap = chosen[-options.artist_gap :] if options.artist_gap else []
            recent = {_artist(other) for other in gap}
            best: tuple[int, str] | None = None
            for artist, queue in waiting.items():
                while queue and album_full(queue[0][1]):
                    queue.popleft()
                if queue and not (artist and artist in recent):
                    if best is None or queue[0][0] < best[0]:
                        best = (queue[0][0], artist)
            if best is None:
                break
            file = waiting[best[1]].popleft()[1]
            chosen.append(file)
            albums[_album(file)] = albums.get(_album(file), 0) + 1
        for artist in [artist for artist, queue in waiting.items() if not queue]:
            del waiting[artist]

    for rank, match in enumerate(matches):
        if len(chosen) >= options.count:
            break
        file = match.file
        if options.allowed is not None and file.pk not in options.allowed:
            continue
        if options.min_duration is not None and (file.duration or 0) < options.min_duration:
            continue
        if options.max_duration is not None and (file.duration or 0) > options.max_duration:
            continue
        if album_full(file):
            continue
        waiting.setdefault(_artist(file), deque()).append((rank, file))
        place()
    return chosen


def tracks_of(album: str = "", artist: str = "") -> list[LibraryFile]:
    """The analysed tracks of an album and/or an artist (up to MAX_COUNT, whose mean is
    a mix's query); none asked for: []. SonicError when none matches."""
    if not (album or artist):
        return []
    rows = LibraryFile.objects.all()
    if album:
        rows = rows.filter(album__iexact=album)
    if artist:
        rows = rows.filter(artist__iexact=artist) | rows.filter(album_artist__iexact=artist)
    backbone, model_set = space()
    rows = rows.filter(embeddings__backbone=backbone, embeddings__model_set=model_set)
    found = list(rows.distinct().order_by("pk")[:MAX_COUNT])
    if not found:
        raise SonicError("no analysed track matches that album or artist")
    return found


#: What a mood constraint's tier may be: a tier, or a mood set's name ("" is "regular").
MOOD_TIERS = (*keys.TIERS, *keys.MOOD_SETS)


def allowed_by_mood(mood: str, tier: str = "") -> set[int] | None:
    """The ids of the files carrying the mood word (at tier: a tier or a mood set's
    name, "regular" by default), as the library's search finds them; None for no mood.
    SonicError for a word neither the models nor the library know, a tier that is
    none of MOOD_TIERS, or a tier without a mood word."""
    if tier and tier not in MOOD_TIERS:
        raise SonicError(f"no tier or mood set named {tier!r}; there are: {', '.join(MOOD_TIERS)}")
    if not mood:
        if tier:
            raise SonicError("a tier needs a mood word")
        return None
    words = analytics.mood_words()
    if mood not in words:
        known = ", ".join(words) or "none yet: tag some files first"
        raise SonicError(f"no mood word {mood!r}; there are: {known}")
    tier = tier or "regular"
    tier_keys = [label.tier_key for label in words[mood]]
    files = LibraryFile.objects.search("", mood, tier, tier_keys)
    return set(files.values_list("id", flat=True))


# --- sonic path --------------------------------------------------------------------------


def path(start: LibraryFile, end: LibraryFile, steps: int = 10) -> list[LibraryFile]:
    """steps tracks from start to end (both included), each the nearest unused track to
    its point on the line between them, and never the artist of the track before."""
    check_count(steps, "steps", MAX_STEPS, minimum=2)
    a, b = vector_of(start), vector_of(end)
    found = index()
    chosen = [start]
    used = {start.pk, end.pk}
    for step in range(1, steps - 1):
        t = step / (steps - 1)
        point = (1 - t) * a + t * b
        wanted = 32
        while True:
            pick = None
            for match in _files(found.search(point, wanted, exclude=used)):
                before = _artist(chosen[-1])
                if before and _artist(match.file) == before:
                    continue
                if step == steps - 2 and _artist(end) and _artist(match.file) == _artist(end):
                    continue
                pick = match.file
                break
            if pick is not None or wanted >= len(found):
                break
            wanted *= 4
        if pick is None:
            break  # the library has no more tracks to walk through
        chosen.append(pick)
        used.add(pick.pk)
    return [*chosen, end]


# --- possible duplicates -----------------------------------------------------------------

#: Up to this many tracks the duplicates are found while the page waits (under a
#: second); a larger library has them found by a worker (sonic.tasks) and cached.
DUPLICATES_INLINE = 20000
DUPLICATES_CACHE = "sonic-duplicates"


@dataclass
class Duplicate:
    files: list[LibraryFile]
    score: float


def duplicates(
    threshold: float = 0.995, duration_tolerance: float = 2.0, limit: int = 500
) -> list[Duplicate]:
    """Pairs of tracks whose embeddings (cosine >= threshold) and durations (within
    duration_tolerance seconds) nearly coincide, best first. Nomarr never deletes any."""
    pairs = sorted(index().pairs_above(threshold), reverse=True)
    rows_by_id = LibraryFile.objects.in_bulk({f for _, a, b in pairs for f in (a, b)})
    result = []
    for score, a, b in pairs:
        one, two = rows_by_id.get(a), rows_by_id.get(b)
        if one is None or two is None:
            continue
        if one.duration is not None and two.duration is not None:
            if abs(one.duration - two.duration) > duration_tolerance:
                continue
        result.append(Duplicate([one, two], score))
        if len(result) >= limit:
            break
    return result


def _index_key(found: sonic_index.Index) -> str:
    newest = int(found.ids[-1]) if len(found.ids) else 0
    return f"{DUPLICATES_CACHE}-{found.backbone}-{found.model_set}-{len(found)}-{newest}"


def find_duplicates() -> list[Duplicate]:
    """duplicates(), kept in the cache for the index as it is now (the worker's task)."""
    found = index()
    pairs = duplicates()
    cache.set(_index_key(found), [([f.pk for f in d.files], d.score) for d in pairs], None)
    return pairs


def known_duplicates() -> list[Duplicate] | None:
    """The possible duplicates: found now in a small library, else the ones a worker
    found for the index as it is (None while it looks: it is asked to, once)."""
    found = index()
    if len(found) <= DUPLICATES_INLINE:
        return duplicates()
    saved = cache.get(_index_key(found))
    if saved is None:
        if cache.add(f"{DUPLICATES_CACHE}-asked", True, timeout=600):
            from django_q.tasks import async_task

            async_task("sonic.tasks.find_duplicates", group="sonic-duplicates")
        return None
    rows = LibraryFile.objects.in_bulk({pk for ids, _ in saved for pk in ids})
    return [
        Duplicate([rows[a], rows[b]], score) for (a, b), score in saved if a in rows and b in rows
    ]
