"""The first hour, through the real command line and server: databases that are not there
yet or cannot be used, the key commands' output, and `url`s that follow the server."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from tests.conftest import POSTGRES_ENV
from tests.e2e.conftest import start_live_server


def kennel(
    database_url: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KENNEL_")}
    env["KENNEL_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "kennel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def postgres_server() -> str:
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    return make_url(server).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin(server: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(statement)


def test_a_missing_postgres_database_is_created_only_when_asked(postgres_server: str) -> None:
    # More cases, and their exact lines, in tests/operations/test_startup.py.
    name = f"kennel_new_{secrets.token_hex(4)}"
    url = make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    try:
        refused = kennel(url, "db", "upgrade")
        assert refused.returncode == 2, refused.stderr
        assert "--create-database" in refused.stderr
        done = kennel(url, "db", "upgrade", "--create-database")
        assert done.returncode == 0, done.stderr
        assert kennel(url, "keys", "list").returncode == 0  # migrated: the tables are there
    finally:
        _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_database_that_cannot_be_created_is_one_line(postgres_server: str) -> None:
    role = f"kennel_nocreate_{secrets.token_hex(3)}"
    _admin(postgres_server, f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    try:
        url = make_url(postgres_server).set(username=role, database=f"nope_{role}")
        done = kennel(
            url.render_as_string(hide_password=False), "db", "upgrade", "--create-database"
        )
        assert done.returncode == 2
        said, line = done.stderr.strip().splitlines()  # the database used, then why not
        assert said.startswith("kennel: database postgresql://")
        assert line.startswith("kennel: KENNEL_DATABASE_URL names database")
        assert "createdb" in line
        assert "CREATEDB" in line
    finally:
        _admin(postgres_server, f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://postgres@127.0.0.1:1/kennel", "cannot reach PostgreSQL at 127.0.0.1:1"),
        ("mysql://root@127.0.0.1/kennel", "must be a sqlite:/// or postgresql:// URL"),
        ("sqlite:////proc/kennel/nope.sqlite3", "cannot open the SQLite database"),
    ],
)
def test_unusable_databases_stop_start_up_with_one_line(url: str, says: str) -> None:
    done = kennel(url, "serve", "--port", "1")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "KENNEL_DATABASE_URL" in line
    assert says in line


def test_the_key_commands_say_what_they_did(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kennel.sqlite3'}"
    assert kennel(url, "db", "upgrade").returncode == 0  # the commands make no database
    created = kennel(url, "keys", "create", "--email", "ada@example.com")
    assert created.returncode == 0, created.stderr
    assert "(default, created)" in created.stdout.splitlines()[0]  # the organization it used
    listed = kennel(url, "keys", "list").stdout.splitlines()
    assert listed[0].split("\t") == ["KEY ID", "PREFIX", "STATE", "USER", "ORGANIZATION"]
    assert listed[1].endswith("\tactive\tada@example.com\tdefault")


def test_urls_follow_the_port_served_when_public_url_is_unset(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'kennel.sqlite3'}"
    with start_live_server(tmp_path, database_url, extra_env={"KENNEL_PUBLIC_URL": ""}) as server:
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {server.api_key}"}
        ) as http:
            worker = http.post("/api/workers", json={"title": "Where am I"}).json()
        assert worker["url"] == f"{server.base_url}/workers/{worker['id']}"
    printed = (tmp_path / "server.stdout").read_text()  # for people: the log is on stderr
    port = server.base_url.rsplit(":", 1)[1]
    assert f"Kennel 0.1.0 is ready\n  listening on  127.0.0.1:{port}" in printed
