"""`/readyz` (issue 26): ready only while the database answers, its schema is this code's and
DBOS runs; and `KENNEL_*` variables that are no setting are named at start-up."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from kennel.cli import app as cli
from kennel.core.settings import unknown_variables
from tests.conftest import fresh_postgres_database
from tests.e2e.conftest import start_live_server


async def test_a_running_server_is_ready(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "durable": "ok"},
    }


async def test_a_schema_of_another_version_or_stopped_dbos_is_not_ready(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state, "head_revision", "9999")
    monkeypatch.setattr(app.state, "durable_running", False)
    r = await client.get("/readyz")
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    checks = r.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"].endswith("this code at 9999")
    assert checks["durable"].startswith("DBOS is not running")


@pytest.mark.e2e
@pytest.mark.e2e
def test_readiness_follows_the_database(tmp_path: Path) -> None:
    """PostgreSQL stops taking connections (as when it restarts), then takes them again."""
    with fresh_postgres_database() as url:
        name = make_url(url).database
        admin = make_url(url).set(database="postgres", drivername="postgresql")
        with (
            start_live_server(tmp_path / "server", url) as server,
            psycopg.connect(admin.render_as_string(False), autocommit=True) as pg,
            server.http(server.api_key) as http,
        ):
            assert http.get("/readyz").status_code == 200
            pg.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            try:
                pg.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
                down = http.get("/readyz")
                workers = http.get("/api/workers")
            finally:
                pg.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            deadline = time.monotonic() + 30
            while (up := http.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, up.text
                time.sleep(0.2)
            log = server.log_text()
    assert down.status_code == 503, down.text
    assert down.json()["checks"]["database"].startswith("The database is unavailable")
    assert workers.status_code == 503, workers.text  # not 500 "this is a bug"
    assert "bug" not in workers.text
    assert up.json()["status"] == "ready"
    assert "this is a bug" not in log


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    found = unknown_variables(
        {
            "KENNEL_MODLE": "openai:gpt-4.1",
            "KENNEL_MODEL": "offline",
            "KENNEL_FROBNICATE": "1",
            "KENNEL_TEST_POSTGRES_URL": "postgresql://",
            "PATH": "/bin",
        }
    )
    assert found == [("KENNEL_FROBNICATE", None), ("KENNEL_MODLE", "KENNEL_MODEL")]


def test_the_cli_warns_of_an_unknown_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["keys", "list"],
        env={
            "KENNEL_DATABASE_URL": f"sqlite:///{tmp_path / 'k.sqlite3'}",
            "KENNEL_MODLE": "openai:gpt-4.1",
        },
    )
    assert (
        "kennel: warning: KENNEL_MODLE is not a setting (did you mean KENNEL_MODEL?)"
        in result.output
    ), result.output
