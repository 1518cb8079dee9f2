"""Every line the server logs is one JSON object, DBOS's included, through a database fault.

DBOS gives its logger a plain-text handler of its own (about 470 plain lines, tracebacks
among them, in 4 s of a PostgreSQL outage before Kennel routed it). The fault here: on
PostgreSQL the test database refuses connections and the server's are cut; on SQLite DBOS's
`workflow_status` table is renamed away. Either way DBOS's queue threads log for a few
seconds, then the server works again. stdout carries only the start-up block for people.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from tests.conftest import BACKENDS, POSTGRES_ENV, fresh_database
from tests.e2e.conftest import LiveServer, start_live_server
from tests.e2e.otlp import otlp_receiver

pytestmark = pytest.mark.e2e

FAULT_SECONDS = 3


@contextlib.contextmanager
def database_fault(backend: str, database_url: str, workdir: Path) -> Iterator[None]:
    if backend == "sqlite":
        with contextlib.closing(
            sqlite3.connect(workdir / "kennel.sqlite3", isolation_level=None)
        ) as c:
            c.execute("ALTER TABLE workflow_status RENAME TO workflow_status_away")
            try:
                yield
            finally:
                c.execute("ALTER TABLE workflow_status_away RENAME TO workflow_status")
        return
    name = make_url(database_url).database
    admin = make_url(os.environ[POSTGRES_ENV]).set(drivername="postgresql")
    dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            yield
        finally:
            c.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def dbos_logged(server: LiveServer) -> bool:
    """Whether DBOS has logged: a JSON line of its logger, or one of its own plain lines."""
    text = server.log_text()
    return '"logger": "dbos"' in text or "(dbos:" in text


def log_entries(path: Path) -> list[dict[str, object]]:
    """Every line of the log, parsed; fails naming the first line that is not a JSON object."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"{path}, line {number} is not JSON: {line[:300]}")
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        entries.append(entry)
    return entries


def assert_stdout_is_the_startup_block(server: LiveServer, workdir: Path) -> None:
    lines = (workdir / "server.stdout").read_text().splitlines()
    assert lines, "no start-up block on stdout"
    assert lines[0].startswith("Kennel "), lines[0]
    assert lines[0].endswith(" is ready"), lines[0]
    assert all(line.startswith("  ") for line in lines[1:]), lines


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_line_is_json_through_a_database_fault(backend: str, tmp_path: Path) -> None:
    with otlp_receiver() as collector, fresh_database(backend, tmp_path) as url:
        # Traces on too: DBOS's tracing set-up logs, and lines inside a span carry its ids.
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with start_live_server(tmp_path, url, backend=backend, extra_env=env) as server:
            with server.http(server.api_key) as http:
                assert http.get("/api/workers/wrk_missing").status_code == 404
                with database_fault(backend, url, tmp_path):
                    server.wait_for("DBOS to log the fault", lambda: dbos_logged(server))
                    time.sleep(FAULT_SECONDS)
                server.wait_for("readiness", lambda: http.get("/readyz").status_code == 200)
                r = http.post("/api/tasks", json={"input": "hello"})
                assert r.status_code == 200, r.text
                assert r.json()["status"] == "completed", r.text
        # Stopped: the shutdown's lines are in the log too.
        entries = log_entries(server.log_path)
    loggers = {str(e["logger"]) for e in entries}
    assert {"dbos", "uvicorn.error", "alembic.runtime.migration", "kennel.access"} <= loggers
    dbos = [e for e in entries if e["logger"] == "dbos"]
    assert all(e["level"] in ("WARNING", "ERROR") for e in dbos), dbos[:3]
    # Once each: not also through the root logger's handler.
    assert len({(e["time"], e["message"]) for e in dbos}) == len(dbos)
    assert not any("OTLP is enabled" in str(e["message"]) for e in dbos)
    turn_lines = [e for e in entries if e["logger"] == "kennel.tasks" and "turnId" in e]
    assert turn_lines, "no turn-end line"
    assert all(len(str(e.get("traceId", ""))) == 32 for e in turn_lines), turn_lines
    assert_stdout_is_the_startup_block(server, tmp_path)


def test_without_traces_every_line_is_json_too(tmp_path: Path) -> None:
    """Traces off (nothing set, the default): the same log, without trace ids."""
    backend = "sqlite"
    with fresh_database(backend, tmp_path) as url:
        with start_live_server(tmp_path, url, backend=backend) as server:
            with server.http(server.api_key) as http:
                done = http.post("/api/tasks", json={"input": "hello"}).json()
                assert done["status"] == "completed", done
                with database_fault(backend, url, tmp_path):
                    server.wait_for("DBOS to log the fault", lambda: dbos_logged(server))
                server.wait_for("readiness", lambda: http.get("/readyz").status_code == 200)
        entries = log_entries(server.log_path)
    assert not any("traceId" in e for e in entries)
    assert_stdout_is_the_startup_block(server, tmp_path)
