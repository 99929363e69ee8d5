"""Every URL of the URLconf, tried as the anonymous, as a plain user, as staff (and with an
API key for the API), against the roles of nomarr_site/roles.py.

The sweep keeps the roles table complete (every URL name has its roles), refuses the
anonymous everywhere but the public URLs, and tries every action that changes
something as each role: a plain user gets 403 on a staff action and the action does
not happen; staff (and an API key) do it. A URL that is not a listed action changes
nothing, whoever posts to it. The pages show staff-only buttons to staff only.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from library.models import (
    LibraryFile,
    LibraryRoot,
    RetierRun,
    Scan,
    ScoreDistribution,
    TagValue,
)
from library.scanning import scan_root
from nomarr_site import roles
from nomarr_site.roles import ACCESS, Role
from nomarr_site.workers import worker_id
from playlists.models import WrittenPlaylist
from tagging.models import Job, WorkerState
from teach.models import Example, TaughtTag

pytestmark = pytest.mark.django_db

#: Namespaces that check for themselves and are not Nomarr's to sweep: Django's admin.
NOT_SWEPT = {"admin"}


def url_names(patterns=None, prefix: str = "", namespace: str = "") -> dict[str, str]:
    """Every named URL of the URLconf -> its address, with 1 for each path argument."""
    found: dict[str, str] = {}
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if pattern.namespace in NOT_SWEPT:
                continue
            inner = ":".join(filter(None, [namespace, pattern.namespace or ""]))
            found.update(url_names(pattern.url_patterns, route, inner))
        elif isinstance(pattern, URLPattern) and pattern.name:
            name = f"{namespace}:{pattern.name}" if namespace else pattern.name
            kwargs = {arg: 1 for arg in pattern.pattern.converters}
            found[name] = reverse(name, kwargs=kwargs or None)
    return found


URLS = url_names()


def is_api(name: str) -> bool:
    return name.split(":")[0] in roles.API_NAMESPACES


def test_every_url_has_its_roles():
    assert set(URLS) == set(ACCESS), "add the URL to nomarr_site/roles.py ACCESS (or remove it)"


def test_the_sweep_finds_the_pages():
    assert {"/", "/tag/", "/queue/", "/models/", "/jobs/1/", "/api/v1/tag"} <= set(URLS.values())


@pytest.mark.parametrize("name", sorted(n for n in URLS if ACCESS[n].look > Role.ANYONE))
def test_the_anonymous_are_refused_everywhere_but_the_public_urls(name):
    for method in (Client().get, Client().post):
        response = method(URLS[name])
        if is_api(name):
            assert response.status_code == 401, name
            assert response.json()["error"] == "not_authenticated"
        else:
            assert response.status_code == 302, name
            assert response["Location"].startswith(reverse("login")), name


# --- the actions ---------------------------------------------------------------------


@dataclass
class Env:
    """A library with one scanned song, and the rows the actions work on."""

    root: LibraryRoot
    song: Path
    file: LibraryFile
    playlists: Path
    jobs: dict[str, Job] = field(default_factory=dict)
    key: APIKey | None = None
    scan: Scan | None = None
    spare: Path = Path()  # a folder outside the library, to add as a root
    spare_root: LibraryRoot | None = None


@dataclass(frozen=True)
class Action:
    """One thing a URL does: posted as `data` (JSON for the API), seen by `happened`."""

    id: str
    name: str
    data: Callable[[Env], dict]
    happened: Callable[[Env], bool]
    setup: Callable[[Env], None] = lambda env: None
    kwargs: Callable[[Env], dict] = lambda env: {}


def job(env: Env, key: str, status: str, **fields) -> None:
    env.jobs[key] = Job.objects.create(
        path=str(env.song.parent / f"{key}.flac"), status=status, **fields
    )


def status_of(env: Env, key: str) -> str | None:
    row = Job.objects.filter(pk=env.jobs[key].pk).first()
    return row.status if row else None


def stuck(env: Env) -> None:
    long_ago = timezone.now() - timedelta(days=2)
    job(env, "stuck", "running", worker="elsewhere:1", started_at=long_ago)


def paused(env: Env) -> None:
    WorkerState.get()
    WorkerState.objects.update(paused=True)


def finished_long_ago(env: Env) -> None:
    job(env, "old", "done", finished_at=timezone.now() - timedelta(days=2))


def running_scan(env: Env) -> None:
    env.scan = Scan.objects.create(root=env.root, worker=worker_id())


def generation_was(env: Env) -> None:
    env.jobs["generation"] = WorkerState.get().models_generation


def generation_moved(env: Env) -> bool:
    return WorkerState.get().models_generation != env.jobs["generation"]


def has_job(env: Env) -> bool:
    return Job.objects.filter(path=str(env.song)).exists()


def analysed(env: Env) -> None:
    """The song with an embedding of the current models, so a mix or path can use it."""
    import numpy as np

    from sonic import index
    from sonic.storage import current_model_set, store
    from tagging.pipeline import Embedding

    heard = Embedding(np.ones(200, np.float32), np.ones(200, np.float32), 1)
    store(env.file, current_model_set(), {index.search_backbone(): heard})
    index.forget()  # this test's database, not an earlier test's index


def written(name: str) -> Callable[[Env], bool]:
    return lambda env: (env.playlists / f"{name}.m3u8").is_file()


SONIC_MIX_FORM = {"count": 1, "artist_gap": 0, "per_album": 0, "min_duration": "",
                  "max_duration": "", "include_seeds": "on", "action": "write"}  # fmt: skip


def spare_root(env: Env) -> None:
    env.spare_root = LibraryRoot.objects.create(path=str(env.spare))


def root_form(env: Env) -> dict:
    prefix = f"root{env.root.pk}"
    return {f"{prefix}-ignore_patterns": "*.part", f"{prefix}-auto_tag": "on"}


PLAYLIST_RULES = json.dumps({"all": [{"contains": {"mood": "happy"}}]})
PLAYLIST_FORM = {
    "rows-TOTAL_FORMS": "0",
    "rows-INITIAL_FORMS": "0",
    "rows-MIN_NUM_FORMS": "0",
    "rows-MAX_NUM_FORMS": "50",
    "match": "all",
    "action": "write",
    "name": "Swept",
    "rules_json": PLAYLIST_RULES,
}


def swept_tag(env: Env, examples: bool = False, trained: bool = False) -> None:
    """A taught tag "swept"; with examples, 12 analysed files (env's and 11 more rows) with
    embeddings of two kinds, marked yes and no; trained, its classifier learned."""
    import numpy as np

    from sonic.index import search_backbone
    from sonic.storage import current_model_set, store
    from tagging.pipeline import Embedding
    from teach import learning
    from teach.examples import mark

    tag = TaughtTag.objects.create(name="swept")
    if not (examples or trained):
        return
    rng = np.random.default_rng(0)
    for i in range(12):
        row = (
            env.file
            if i == 0
            else LibraryFile.objects.create(
                root=env.root,
                path=str(env.song.parent / f"ghost{i}.flac"),
                folder=str(env.song.parent),
                size=1,
                mtime_ns=0,
            )
        )
        mean = rng.normal(1.0 if i % 2 == 0 else -1.0, 0.3, 200).astype("f4")
        store(row, current_model_set() or "", {search_backbone(): Embedding(mean, mean * 0, 4)})
        mark(tag, row, i % 2 == 0)
    if trained:
        learning.train(tag)


def swept(happened: Callable[..., bool]) -> Callable[[Env], bool]:
    return lambda env: happened(TaughtTag.objects.filter(name="swept").first())


def swept_marked(env: Env) -> bool:
    return Example.objects.filter(tag__name="swept", file=env.file).exists()


def swept_genres(env: Env) -> None:
    """The analysed files of swept_tag with two genres, env's file with none."""
    swept_tag(env, examples=True)
    for row in LibraryFile.objects.exclude(pk=env.file.pk):
        row.genre = (
            "Ambient"
            if row.path.endswith(("2.flac", "4.flac", "6.flac", "8.flac", "10.flac"))
            else "Rock"
        )
        row.save(update_fields=["genre"])
    LibraryFile.objects.filter(pk=env.file.pk).update(genre="")


ACTIONS = [
    # the queue (staff)
    Action("pause", "queue-action", lambda e: {"action": "pause"},
           lambda e: WorkerState.get().paused),
    Action("resume", "queue-action", lambda e: {"action": "resume"},
           lambda e: not WorkerState.get().paused, setup=paused),
    Action("reset-stuck", "queue-action", lambda e: {"action": "reset_stuck"},
           lambda e: status_of(e, "stuck") == "pending", setup=stuck),
    Action("retry-errors", "queue-action", lambda e: {"action": "retry_errors"},
           lambda e: status_of(e, "failed") == "pending",
           setup=lambda e: job(e, "failed", "error")),
    Action("flush", "queue-action",
           lambda e: {"action": "flush", "statuses": ["done", "error"], "confirm": "yes"},
           lambda e: status_of(e, "done") is None, setup=lambda e: job(e, "done", "done")),
    Action("remove", "queue-action",
           lambda e: {"action": "remove", "job": e.jobs["waiting"].pk, "confirm": "yes"},
           lambda e: status_of(e, "waiting") is None,
           setup=lambda e: job(e, "waiting", "pending")),
    Action("retry", "queue-action", lambda e: {"action": "retry", "job": e.jobs["failed"].pk},
           lambda e: status_of(e, "failed") == "pending",
           setup=lambda e: job(e, "failed", "error")),
    # models and scans (staff)
    Action("reload-models", "models", lambda e: {}, generation_moved, setup=generation_was),
    Action("scan", "library:scan-action", lambda e: {"action": "scan"},
           lambda e: Scan.objects.filter(root=e.root, full=False, trigger="web").exists(),
           kwargs=lambda e: {"root_id": e.root.pk}),
    Action("full-scan", "library:scan-action", lambda e: {"action": "full"},
           lambda e: Scan.objects.filter(root=e.root, full=True, trigger="web").exists(),
           kwargs=lambda e: {"root_id": e.root.pk}),
    Action("cancel-scan", "library:scan-action", lambda e: {"action": "cancel", "confirm": "yes"},
           lambda e: Scan.objects.get(pk=e.scan.pk).cancel_requested,
           setup=running_scan, kwargs=lambda e: {"root_id": e.root.pk}),
    # calibration and retier (staff)
    Action("measure", "library:calibration-action", lambda e: {"action": "measure"},
           lambda e: ScoreDistribution.objects.exists()),
    Action("retier", "library:calibration-action", lambda e: {"action": "retier"},
           lambda e: RetierRun.objects.exists()),
    # roots and keys (staff)
    Action("root", "account-root", root_form,
           lambda e: LibraryRoot.objects.get(pk=e.root.pk).ignore_patterns == "*.part",
           kwargs=lambda e: {"root_id": e.root.pk}),
    Action("add-root", "account-root-add", lambda e: {"path": str(e.spare), "auto_tag": "on"},
           lambda e: LibraryRoot.objects.filter(path=str(e.spare)).exists()),
    Action("disable-root", "account-root-state", lambda e: {"action": "disable"},
           lambda e: not LibraryRoot.objects.get(pk=e.root.pk).enabled,
           kwargs=lambda e: {"root_id": e.root.pk}),
    Action("remove-root", "account-root-state", lambda e: {"action": "remove", "confirm": "yes"},
           lambda e: not LibraryRoot.objects.filter(path=str(e.spare)).exists(),
           setup=spare_root, kwargs=lambda e: {"root_id": e.spare_root.pk}),
    Action("create-key", "account-keys", lambda e: {"action": "create", "name": "mine"},
           lambda e: APIKey.objects.filter(name="mine").exists()),
    Action("rotate-key", "account-keys",
           lambda e: {"action": "rotate", "name": "lidarr", "confirm": "yes"},
           lambda e: APIKey.objects.filter(name="lidarr", revoked=True).exists()),
    Action("revoke-key", "account-keys",
           lambda e: {"action": "revoke", "prefix": e.key.prefix, "confirm": "yes"},
           lambda e: APIKey.objects.get(pk=e.key.pk).revoked),
    # tagging and playlists (every person logged in)
    Action("tag-now", "tag-now", lambda e: {"path": str(e.song)}, has_job),
    Action("retag", "library:file-retag", lambda e: {}, has_job,
           kwargs=lambda e: {"file_id": e.file.pk}),
    Action("playlist", "playlists:index", lambda e: PLAYLIST_FORM,
           lambda e: WrittenPlaylist.objects.exists() and (e.playlists / "Swept.nsp").is_file()),
    # sonic: a mix or a path written into the playlist folder (every person logged in)
    Action("sonic-mix-write", "sonic:mix",
           lambda e: {**SONIC_MIX_FORM, "seed": e.file.pk, "name": "Sonic mix"},
           written("Sonic mix"), setup=analysed),
    Action("sonic-path-write", "sonic:path",
           lambda e: {"start": e.file.pk, "end": e.file.pk, "steps": 2, "action": "write",
                      "name": "Sonic path"}, written("Sonic path"), setup=analysed),
    Action("api-sonic-mix-write", "sonic-api:mix",
           lambda e: {"seeds": [{"id": e.file.pk}], "count": 1, "min_duration": None,
                      "action": "write", "name": "API mix"}, written("API mix"), setup=analysed),
    Action("api-sonic-path-write", "sonic-api:path",
           lambda e: {"start": {"id": e.file.pk}, "end": {"id": e.file.pk}, "steps": 2,
                      "action": "write", "name": "API path"}, written("API path"), setup=analysed),
    # the API: tagging (every person, every key) and the admin endpoints (staff, keys)
    Action("api-tag", "api:tag", lambda e: {"path": str(e.song), "wait": 0}, has_job),
    Action("api-lidarr", "api:lidarr",
           lambda e: {"eventType": "Download", "trackFiles": [{"path": str(e.song)}]}, has_job),
    Action("api-remove", "api:queue-remove", lambda e: {"id": e.jobs["waiting"].pk},
           lambda e: status_of(e, "waiting") is None,
           setup=lambda e: job(e, "waiting", "pending")),
    Action("api-flush", "api:queue-flush", lambda e: {"statuses": ["done"]},
           lambda e: status_of(e, "done") is None, setup=lambda e: job(e, "done", "done")),
    Action("api-cleanup", "api:queue-cleanup", lambda e: {"hours": 1},
           lambda e: status_of(e, "old") is None, setup=finished_long_ago),
    Action("api-reset", "api:queue-reset", lambda e: {"stuck": True},
           lambda e: status_of(e, "stuck") == "pending", setup=stuck),
    Action("api-pause", "api:worker-pause", lambda e: {}, lambda e: WorkerState.get().paused),
    Action("api-resume", "api:worker-resume", lambda e: {},
           lambda e: not WorkerState.get().paused, setup=paused),
    Action("api-models", "api:models-refresh", lambda e: {}, generation_moved,
           setup=generation_was),
    # teach a tag (staff: it writes into every analysed file)
    Action("teach-new", "teach:index", lambda e: {"name": "swept_new"},
           lambda e: TaughtTag.objects.filter(name="swept_new").exists()),
    Action("teach-forget", "teach:tag", lambda e: {"action": "delete"},
           swept(lambda tag: tag is None), setup=swept_tag, kwargs=lambda e: {"name": "swept"}),
    Action("teach-examples", "teach:examples",
           lambda e: {"source": "folder", "where": str(e.song.parent), "side": "yes"},
           swept_marked, setup=swept_tag, kwargs=lambda e: {"name": "swept"}),
    Action("teach-mark", "teach:mark", lambda e: {"tag": "swept", "answer": "yes"},
           swept_marked, setup=swept_tag, kwargs=lambda e: {"file_id": e.file.pk}),
    Action("teach-train", "teach:train", lambda e: {}, swept(lambda tag: tag.trained),
           setup=lambda e: swept_tag(e, examples=True), kwargs=lambda e: {"name": "swept"}),
    Action("teach-apply", "teach:apply", lambda e: {}, swept(lambda tag: tag.writing != ""),
           setup=lambda e: swept_tag(e, trained=True), kwargs=lambda e: {"name": "swept"}),
    Action("teach-head", "teach:head", lambda e: {}, swept(lambda tag: bool(tag.head_path)),
           setup=lambda e: swept_tag(e, trained=True), kwargs=lambda e: {"name": "swept"}),
    Action("teach-genres", "teach:genres", lambda e: {},
           lambda e: TagValue.objects.filter(key="nom_genre_suggested").exists(),
           setup=swept_genres),
]  # fmt: skip

WHO = ["anonymous", "user", "staff", "key"]


@pytest.fixture
def env(make_library, make_audio, settings, private_cache) -> Env:
    folder = make_library("music", auto_tag=False)
    song = Path(shutil.move(make_audio("flac"), folder / "song.flac"))
    root = LibraryRoot.objects.get(path=str(folder))
    scan_root(root)
    settings.NOMARR_PLAYLIST_DIR = str(folder / "Playlists")
    settings.NOMARR_MODELS_DIR = folder.parent / "models"  # where a taught head is saved
    key, _ = APIKey.objects.create_key(name="lidarr")
    WorkerState.get()  # the row every page reads (made on first use)
    spare = folder.parent / "more"
    spare.mkdir()
    file = LibraryFile.objects.get(path=str(song))
    return Env(root, song, file, folder / "Playlists", key=key, spare=spare)


def client_for(who: str) -> Client:
    if who == "key":
        return Client(HTTP_AUTHORIZATION=f"Bearer {APIKey.objects.create_key(name='sweep')[1]}")
    client = Client()
    if who in ("user", "staff"):
        person = get_user_model().objects.create_user(f"{who}-{uuid.uuid4()}", password="x" * 20)
        person.is_staff = who == "staff"
        person.save()
        client.force_login(person)
    return client


def post(client: Client, action: Action, env: Env):
    url = reverse(action.name, kwargs=action.kwargs(env) or None)
    if is_api(action.name):
        return client.post(url, json.dumps(action.data(env)), content_type="application/json")
    return client.post(url, action.data(env))


def test_every_action_that_needs_a_role_is_swept():
    staff_urls = {name for name, access in ACCESS.items() if access.act == Role.STAFF}
    assert staff_urls <= {action.name for action in ACTIONS}


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("action", ACTIONS, ids=lambda action: action.id)
def test_each_action_as_each_role(env, action, who):
    if who == "key" and not is_api(action.name):
        pytest.skip("API keys open the API only")
    action.setup(env)
    response = post(client_for(who), action, env)
    needed = roles.required(action.name, "POST")
    have = {"anonymous": Role.ANYONE, "user": Role.USER, "staff": Role.STAFF, "key": Role.STAFF}
    if have[who] >= needed:
        assert response.status_code < 400, (response.status_code, response.content[:300])
        assert action.happened(env), f"{who} could not {action.id}"
        return
    if who == "anonymous":
        expected = 401 if is_api(action.name) else 302
    else:
        expected = 403
    assert response.status_code == expected, response.content[:300]
    if expected == 302:
        assert response["Location"].startswith(reverse("login"))
    assert not action.happened(env), f"{who} could {action.id}"


def snapshot() -> dict:
    """What an action could change: the rows of the tables Nomarr's actions write."""
    return {
        "jobs": sorted(Job.objects.values_list("pk", "path", "status")),
        "scans": sorted(Scan.objects.values_list("pk", "status", "cancel_requested")),
        "roots": sorted(LibraryRoot.objects.values_list("pk", "enabled", "ignore_patterns")),
        "keys": sorted(APIKey.objects.values_list("pk", "revoked")),
        "worker": list(WorkerState.objects.values_list("paused", "models_generation")),
        "playlists": sorted(WrittenPlaylist.objects.values_list("pk", "sha256")),
        "retier": sorted(RetierRun.objects.values_list("pk", "status")),
        "calibrations": sorted(
            ScoreDistribution.objects.filter(kind="calibration").values_list("pk")
        ),
    }


ACTION_URLS = {action.name for action in ACTIONS}


@pytest.mark.parametrize(
    "name", sorted(n for n in URLS if n not in ACTION_URLS and n not in ("login", "logout"))
)
def test_a_url_that_is_no_action_changes_nothing(env, name):
    before = snapshot()
    for who in ("user", "staff"):
        client_for(who).post(URLS[name], {"action": "pause", "path": str(env.song)})
    assert snapshot() == before


# --- what the pages show -------------------------------------------------------------

STAFF_BUTTONS = {
    "/queue/": ['value="pause"', 'value="reset_stuck"', 'value="flush"', 'value="remove"'],
    "/models/": ["Reload models"],
    "/library/scans/": ['value="scan"', 'value="full"', 'value="cancel"'],
    "/library/calibration/": ['value="measure"', 'value="calibrate"', 'value="retier"'],
    "/": ['href="/admin/"'],
}


@pytest.mark.parametrize("url", STAFF_BUTTONS)
def test_plain_users_see_no_staff_buttons(env, url):
    job(env, "waiting", "pending")
    plain, staff = client_for("user").get(url), client_for("staff").get(url)
    assert plain.status_code == staff.status_code == 200
    for button in STAFF_BUTTONS[url]:
        assert button in staff.content.decode(), (url, button)
        assert button not in plain.content.decode(), (url, button)


def test_plain_users_still_see_the_buttons_they_may_use(env):
    page = client_for("user").get(reverse("library:file", kwargs={"file_id": env.file.pk}))
    assert 'id="retag"' in page.content.decode()
    assert 'name="path"' in client_for("user").get("/tag/").content.decode()
