"""Schemathesis against the real server: no input any member can send may cause a 5xx, and
every answer must match the OpenAPI document.

Against a live `kennel serve`, not the ASGI app in process: Schemathesis calls an ASGI app from
a thread and event loop of its own, where the test session's DBOS (one per process) does not
run the turns. Bounded to a few dozen examples an operation, so it stays well under a minute.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from kennel.core.parsers import parse_timezone
from kennel.schedules.timing import parse_cron
from tests.conftest import fresh_database
from tests.e2e.conftest import LiveServer, start_live_server

EXAMPLES_PER_OPERATION = 25
MIN_INTERVAL_SECONDS = 60  # the server's default


def _contract_valid(case: schemathesis.Case) -> bool:
    """Whether a generated schedule keeps the rules of the contract its JSON Schema cannot say
    (each refused with a 400 naming the field, tested in tests/schedules): a one-off date in
    the future, a cron expression and zone that exist, an interval of at least the server's
    minimum, seconds written as integers (JSON Schema counts 60.0 as one; Kennel's integers
    are strict); MCP servers that resolve and are registered. Positive cases that break them
    are not positive, so they are skipped."""
    body = case.body if isinstance(case.body, dict) else {}
    if case.path == "/api/mcp-servers" or body.get("mcpServers"):
        # An MCP server's URL must resolve to an allowed address when it is registered, and a
        # worker's `mcpServers` must name registered ones: generated data never does
        # (tests/mcp_servers covers both, valid and not).
        return False
    when = body.get("when")
    if not isinstance(when, dict):
        return True
    kind = when.get("type")
    if any(isinstance(when.get(f), float) for f in ("delayInSeconds", "intervalSeconds")):
        return False
    try:
        if kind == "scheduled":
            due = datetime.fromisoformat(str(when.get("date")))
            return due.tzinfo is None or due > datetime.now(UTC) + timedelta(minutes=5)
        if kind == "cron":
            parse_cron(str(when.get("cron")))
            parse_timezone(str(when.get("timezone") or "UTC"))
        if kind == "interval":
            seconds = when.get("intervalSeconds")
            return not (isinstance(seconds, int) and seconds < MIN_INTERVAL_SECONDS)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    # SQLite only: the point is the request path, which is the same on both backends, and the
    # run is costly; the PostgreSQL variants of every other test cover the database.
    with (
        fresh_database("sqlite", workdir) as database_url,
        start_live_server(
            workdir,
            database_url,
            backend="sqlite",
            extra_env={
                "KENNEL_TASK_WAIT_SECONDS": "5",
                "KENNEL_LOG_LEVEL": "WARNING",
                # Generated bodies over a field's limit can pass the default 1 MiB: the 400 for
                # the field is what is tested, not the 413.
                "KENNEL_MAX_JSON_BODY_BYTES": str(16 * 1024 * 1024),
            },
        ) as server,
    ):
        yield server


# Schemathesis's `requests` client can drop a connection it did not close (a response it gave up
# reading), and the socket's finalizer then warns in whichever test the garbage collector runs.
# The socket is the client's (the server is another process), so it is collected here, in this
# test, where that one warning is not an error.
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <socket\.socket:pytest.PytestUnraisableExceptionWarning"
)
def test_no_input_breaks_the_api(fuzzed_server: LiveServer) -> None:
    """Every operation of the OpenAPI document, fuzzed; the failures of all of them at once."""
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.base_url}/openapi.json")
    auth = {"Authorization": f"Bearer {fuzzed_server.api_key}"}
    schema.config.update(headers=auth)
    failures: dict[str, str] = {}
    operations = calls = 0
    for result, mode in itertools.product(schema.get_all_operations(), GenerationMode):
        operation = result.ok()
        operations += 1
        cases = operation.as_strategy(generation_mode=mode)
        if mode is GenerationMode.POSITIVE:
            cases = cases.filter(_contract_valid)

        @given(case=cases)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            # The key given per call, not only in the config: with a header parameter of its own
            # in the operation (Idempotency-Key), Schemathesis took the configured one for a
            # generated credential and failed the 200 it earned as "ignored auth".
            case.call_and_validate(timeout=30, headers=auth)

        try:
            fuzz()
        except Unsatisfiable:  # no value of its parameters breaks the schema (plain strings)
            continue
        except (Exception, BaseExceptionGroup) as exc:  # each operation's first failure
            failures[f"{operation.label} ({mode.value})"] = _describe(exc)
    gc.collect()
    print(f"schemathesis: {operations // 2} operations, {calls} calls, {len(failures)} failing")
    assert operations // 2 >= 15
    for label, failure in failures.items():
        print(f"--- {label}\n{failure}\n")
    assert sorted(failures) == []


def _describe(exc: BaseException) -> str:
    """The failure, with the failures grouped inside it (a flaky one hides its cause there)."""
    parts = [f"{type(exc).__name__}: {exc}"]
    for inner in getattr(exc, "exceptions", ()):
        parts.append("  " + _describe(inner).replace("\n", "\n  "))
    return "\n".join(parts)[:4000]
