"""Every API operation, fuzzed from the served OpenAPI schema: never a 5xx it does not
document, never a success without a valid key.

schemathesis reads /api/v1/schema/ from a live server (the schema a client reads,
not a copy of it) and, for each operation, generates requests that fit the schema
(positive) and requests that break it (negative: wrong types, missing fields,
out-of-range numbers, odd strings). Each is sent over real HTTP three times: with an
API key, with a wrong one and without one. An answer is wrong when it is a 500, or a
5xx the operation does not document (POST /tag documents its 503: waiting with no
worker running), or a success for a caller without a valid key.

The number of examples is bounded, so the run stays under a minute on two cores:
8 per operation and generation mode (NOMARR_FUZZ_SCALE multiplies them).
Every failure is collected, then reported at once, with the request that caused it.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework_api_key.models import APIKey
from schemathesis import GenerationMode

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]

# NOMARR_FUZZ_SCALE=N: N times the examples, drawn at random (by hand, for a deeper look);
# the suite's run is the same every time.
SCALE = int(os.environ.get("NOMARR_FUZZ_SCALE", "0") or 0) or 1
EXAMPLES = 8 * SCALE
SCHEMA_PATH = "/api/v1/schema/"
# Every operation the API has: a schema that lost some would fuzz nothing for them.
MIN_OPERATIONS = 12


@dataclass
class Failure:
    operation: str
    caller: str
    mode: str
    status: int
    request: str
    answer: str

    def __str__(self) -> str:
        return (
            f"{self.operation} ({self.caller}, {self.mode}) answered {self.status}\n"
            f"  request: {self.request}\n  answer:  {self.answer}"
        )


@pytest.fixture
def library(make_library, private_cache) -> Path:
    """An empty library, and a cache of the test's own: no worker counts as alive."""
    return make_library()


@pytest.fixture
def served_schema(live_server, library):
    """The OpenAPI schema as the live server serves it, aimed at that server."""
    return schemathesis.openapi.from_url(live_server.url + SCHEMA_PATH)


def documented_statuses(operation) -> set[str]:
    return {str(code) for code in operation.definition.raw.get("responses", {})}


def describe(case, prepared: requests.PreparedRequest) -> str:
    body = prepared.body
    if isinstance(body, bytes):
        body = body[:300].decode("utf-8", "backslashreplace")
    elif isinstance(body, str):
        body = body[:300]
    return f"{prepared.method} {prepared.url[:300]} body={body!r}"


CREDENTIALS = {"authorization", "x-api-key", "cookie"}
KEYLESS = ("with a wrong key", "without a key")


def fuzz(operation, mode: GenerationMode, callers: dict[str, dict], base: str, seen: Counter):
    """Send EXAMPLES generated requests for one operation, each as every caller; the
    wrong answers: a server error, or a success for a caller without a valid key.
    Every (operation, caller, status) answered is counted in `seen`."""
    found: list[Failure] = []
    documented = documented_statuses(operation)
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SCALE == 1,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case) -> None:
        # Who calls is ours to set: drop any credentials the generator made up.
        for name in [n for n in case.headers or {} if n.lower() in CREDENTIALS]:
            del case.headers[name]
        if case.cookies:
            case.cookies.clear()
        for caller, headers in callers.items():
            response = case.call(base_url=base, session=session, headers=headers, timeout=30)
            status = response.status_code
            seen[operation.label, caller, status] += 1
            server_error = status >= 500 and (status == 500 or str(status) not in documented)
            let_in = caller in KEYLESS and status < 300
            if server_error or let_in:
                found.append(
                    Failure(
                        operation=operation.label,
                        caller=caller,
                        mode=mode.value,
                        status=status,
                        request=describe(case, response.request),
                        answer=response.text[:300],
                    )
                )

    one()
    return found


def test_no_operation_answers_a_server_error_or_lets_in_a_caller_without_a_key(
    served_schema, live_server, caplog
):
    caplog.set_level(logging.ERROR, logger="django.request")  # 4xx by the thousand: not news
    key = APIKey.objects.create_key(name="fuzz")[1]
    callers = {
        "with a key": {"Authorization": f"Bearer {key}"},
        KEYLESS[0]: {"Authorization": "Bearer AbCdEfGh.not-a-real-key-at-all"},
        KEYLESS[1]: {},
    }
    operations = [result.ok() for result in served_schema.get_all_operations()]
    assert len(operations) >= MIN_OPERATIONS, [op.label for op in operations]

    failures: list[Failure] = []
    seen: Counter = Counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += fuzz(operation, mode, callers, live_server.url, seen)

    # One failure per (operation, caller, mode, status) is enough to read.
    first: dict[tuple, Failure] = {}
    for failure in failures:
        first.setdefault((failure.operation, failure.caller, failure.mode, failure.status), failure)
    assert not first, f"{len(failures)} wrong answers:\n" + "\n".join(map(str, first.values()))
    # With the key, every operation got past the door (not only 401s): the fuzzing
    # reached the views.
    for operation in operations:
        keyed = {
            status
            for (label, caller, status) in seen
            if (label, caller) == (operation.label, "with a key")
        }
        assert keyed - {401, 403}, (operation.label, keyed)
