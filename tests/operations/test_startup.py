"""Start-up that tells the truth (issue 26): a busy port or a bad JSON setting is one line and a
non-zero exit, "ready" is said only once every listener accepts connections, and the commands
say which database they use and never make one they were not asked to.

Every case runs `python -m kennel` as a subprocess, as an operator would.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from tests.conftest import POSTGRES_ENV
from tests.e2e.conftest import free_port

TIMEOUT_SECONDS = 120


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KENNEL_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


def kennel(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kennel", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The only line on stderr, after checking the exit and that nothing else was said."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "ready" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


class TestBusyPorts:
    @pytest.mark.parametrize("how", ["--port", "KENNEL_PORT"])
    def test_a_busy_http_port_is_one_line(
        self, empty_database_url: str, tmp_path: Path, busy_port: int, how: str
    ) -> None:
        env = _env(KENNEL_DATABASE_URL=empty_database_url, KENNEL_SMTP_PORT="0")
        args = ["serve"]
        if how == "--port":
            args += ["--port", str(busy_port)]
        else:
            env["KENNEL_PORT"] = str(busy_port)
        line = _one_line(kennel(*args, cwd=tmp_path, env=env))
        assert line == (
            f"kennel: cannot listen on 127.0.0.1:{busy_port} for HTTP: the port is in use "
            "(set KENNEL_PORT or --port to a free one)"
        )

    def test_a_busy_smtp_port_is_one_line(
        self, empty_database_url: str, tmp_path: Path, busy_port: int
    ) -> None:
        env = _env(KENNEL_DATABASE_URL=empty_database_url, KENNEL_SMTP_PORT=str(busy_port))
        done = kennel("serve", "--port", str(free_port()), cwd=tmp_path, env=env)
        assert _one_line(done) == (
            f"kennel: cannot listen on 127.0.0.1:{busy_port} for SMTP: the port is in use "
            "(set KENNEL_SMTP_PORT to a free one, or KENNEL_SMTP_ENABLED=false)"
        )

    def test_ready_is_said_once_every_listener_accepts(
        self, empty_database_url: str, tmp_path: Path
    ) -> None:
        port = free_port()
        env = _env(KENNEL_DATABASE_URL=empty_database_url, KENNEL_SMTP_PORT="0")
        printed = tmp_path / "stdout"
        with open(printed, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "kennel", "serve", "--port", str(port)],
                env=env,
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.DEVNULL,
            )
        try:
            block = _wait_for_block(process, printed)
            # At once, no retry: "ready" means both ports accept now.
            with socket.create_connection(("127.0.0.1", port), timeout=10) as http:
                http.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                assert http.recv(100).startswith(b"HTTP/1.1 200")
            found = re.search(r"SMTP listener +127\.0\.0\.1:(\d+)", block)
            assert found, block
            with socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=10) as smtp:
                assert smtp.recv(100).startswith(b"220 ")
        finally:
            process.terminate()
            process.wait(TIMEOUT_SECONDS)


def _wait_for_block(process: subprocess.Popen[bytes], printed: Path) -> str:
    """stdout once it holds the whole start-up block (its last row is the SMTP relay)."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        text = printed.read_text()
        if "\n  SMTP relay" in text and text.endswith("\n"):
            assert "is ready" in text, text
            return text
        assert process.poll() is None, f"the server exited: {text}"
        time.sleep(0.02)
    pytest.fail(f"no start-up block within {TIMEOUT_SECONDS}s: {printed.read_text()}")


def test_bad_json_in_a_setting_is_one_line(tmp_path: Path) -> None:
    env = _env(KENNEL_DATA_DIR=str(tmp_path), KENNEL_BUDGET_CAPS='{"low": {"requests": 2}')
    for args in (["serve"], ["keys", "list"]):
        line = _one_line(kennel(*args, cwd=tmp_path, env=env))
        assert line.startswith("kennel: invalid setting KENNEL_BUDGET_CAPS: not valid JSON ("), line


class TestWhichDatabase:
    """SQLite: the default file is relative to the folder a command runs in."""

    @pytest.mark.parametrize(
        "args",
        [
            ["keys", "create", "--email", "ada@example.com"],
            ["keys", "list"],
            ["keys", "revoke", "key_x"],
            ["mail", "list"],
        ],
    )
    def test_no_command_makes_a_database_in_another_folder(
        self, tmp_path: Path, args: list[str]
    ) -> None:
        tmp_path = tmp_path.resolve()  # as the command sees its folder
        done = kennel(*args, cwd=tmp_path, env=_env())
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert "Traceback" not in done.stderr
        file = tmp_path / "data" / "kennel.sqlite3"
        assert done.stderr.splitlines() == [
            f"kennel: database sqlite:///{file} (in KENNEL_DATA_DIR=data)",
            f"kennel: no database at {file} (KENNEL_DATA_DIR=data, from {tmp_path}): run this "
            "where the server runs, or set KENNEL_DATA_DIR or KENNEL_DATABASE_URL to the "
            "server's; `kennel db upgrade` makes a new one",
        ]
        assert not (tmp_path / "data").exists()

    def test_db_upgrade_makes_it_and_the_commands_then_use_it(self, tmp_path: Path) -> None:
        tmp_path = tmp_path.resolve()
        file = tmp_path / "data" / "kennel.sqlite3"
        said = f"kennel: database sqlite:///{file} (in KENNEL_DATA_DIR=data)"
        upgraded = kennel("db", "upgrade", cwd=tmp_path, env=_env())
        assert upgraded.returncode == 0, upgraded.stderr
        assert said in upgraded.stderr
        assert "kennel: the database did not exist; created it" in upgraded.stderr
        assert file.exists()
        created = kennel("keys", "create", "--email", "ada@example.com", cwd=tmp_path, env=_env())
        assert created.returncode == 0, created.stderr
        assert created.stderr.splitlines()[0] == said
        assert created.stdout.splitlines()[-1].startswith("knl_")
        # The same database from elsewhere, named by KENNEL_DATA_DIR.
        other = tmp_path / "elsewhere"
        other.mkdir()
        listed = kennel("keys", "list", cwd=other, env=_env(KENNEL_DATA_DIR=str(file.parent)))
        assert listed.returncode == 0, listed.stderr
        assert "ada@example.com" in listed.stdout
        assert not (other / "data").exists()

    def test_serve_makes_its_sqlite_database_in_its_data_folder(self, tmp_path: Path) -> None:
        # The README's first command on a fresh machine: nothing exists yet.
        with socket.socket() as holder:  # a busy port stops it right after the database step
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            done = kennel("serve", "--port", str(port), cwd=tmp_path, env=_env())
        assert "for HTTP: the port is in use" in _one_line(done)
        assert (tmp_path / "data" / "kennel.sqlite3").exists()


@pytest.fixture
def missing_postgres() -> Iterator[str]:
    """The URL of a PostgreSQL database that does not exist (dropped afterwards if made),
    with a password, which no output may show."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    admin = make_url(server).set(drivername="postgresql")
    name = f"kennel_missing_{secrets.token_hex(4)}"
    # The test server trusts local connections, so the password is only carried along.
    url = admin.set(database=name, password="s3cret-pw")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        import psycopg

        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TestMissingPostgresDatabase:
    def test_serve_refuses_it_in_one_line(self, missing_postgres: str, tmp_path: Path) -> None:
        env = _env(KENNEL_DATABASE_URL=missing_postgres)
        line = _one_line(kennel("serve", "--port", str(free_port()), cwd=tmp_path, env=env))
        url = make_url(missing_postgres)
        assert line == (
            f"kennel: KENNEL_DATABASE_URL names database {url.database!r}, which does not exist "
            f"on {url.host}:{url.port or 5432}: check the name, or create it with "
            "`kennel db upgrade --create-database`"
        )
        assert not _exists(missing_postgres)

    @pytest.mark.parametrize("args", [["keys", "list"], ["db", "upgrade"]])
    def test_commands_refuse_it(
        self, missing_postgres: str, tmp_path: Path, args: list[str]
    ) -> None:
        done = kennel(*args, cwd=tmp_path, env=_env(KENNEL_DATABASE_URL=missing_postgres))
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        said, refused = done.stderr.splitlines()
        masked = make_url(missing_postgres).render_as_string(hide_password=True)
        assert said == f"kennel: database {masked} (KENNEL_DATABASE_URL)"
        assert "s3cret-pw" not in done.stderr
        assert refused.endswith("create it with `kennel db upgrade --create-database`")
        assert not _exists(missing_postgres)

    def test_db_upgrade_create_database_makes_it_and_says_so(
        self, missing_postgres: str, tmp_path: Path
    ) -> None:
        env = _env(KENNEL_DATABASE_URL=missing_postgres)
        done = kennel("db", "upgrade", "--create-database", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert "kennel: the database did not exist; created it" in done.stderr
        assert "s3cret-pw" not in done.stderr
        assert _exists(missing_postgres)
        listed = kennel("keys", "list", cwd=tmp_path, env=env)  # migrated: the tables are there
        assert listed.returncode == 0, listed.stderr
        again = kennel("db", "upgrade", "--create-database", cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stderr
        assert "created it" not in again.stderr


def _exists(url: str) -> bool:
    import psycopg

    parsed = make_url(url)
    admin = parsed.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)
        ).fetchone()
    return found is not None
