"""`kennel prune` and `kennel backup` against a running server, and the server's own prune.

Tasks are made through the API by the real server (offline model), then dated back in its
database; the commands run as subprocesses while the server keeps serving requests.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from tests.conftest import fresh_database
from tests.e2e.conftest import LiveServer, start_live_server

OLD = timedelta(days=40)


def engine_of(server: LiveServer):  # type: ignore[no-untyped-def]  # a SQLAlchemy engine
    url = make_url(server.env["KENNEL_DATABASE_URL"])
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return create_engine(url)


def make_tasks(server: LiveServer, key: str, count: int) -> list[str]:
    """`count` finished tasks of one new worker: their public ids."""
    made = []
    with server.http(key) as http:
        worker = http.post("/api/workers", json={"instructions": "Say hello"})
        assert worker.status_code == 201, worker.text
        for n in range(count):
            r = http.post(
                "/api/tasks", json={"input": f"Hello {n}", "workerId": worker.json()["id"]}
            )
            assert r.status_code == 200, r.text
            made.append(r.json()["metadata"]["taskId"])
    return made


def age_organization(server: LiveServer, organization_id: str) -> None:
    """Date every task of the organization, its turns and their DBOS workflows back 40 days."""
    then = datetime.now(UTC) - OLD
    system = "workflow_status" if server.backend == "sqlite" else "dbos.workflow_status"
    engine = engine_of(server)
    try:
        with engine.begin() as c:
            c.execute(
                text(
                    "UPDATE tasks SET created_at = :t, last_turn_at = :t, completed_at = :t"
                    " WHERE organization_id = :org"
                ),
                {"t": then, "org": organization_id},
            )
            turn_ids = [
                row[0]
                for row in c.execute(
                    text(
                        "SELECT turns.id FROM turns JOIN tasks ON tasks.id = turns.task_id"
                        " WHERE tasks.organization_id = :org"
                    ),
                    {"org": organization_id},
                )
            ]
            for turn_id in turn_ids:
                c.execute(
                    text(
                        f"UPDATE {system} SET created_at = :ms"
                        " WHERE workflow_uuid = :id OR workflow_uuid LIKE :named"
                    ),
                    {"ms": int(then.timestamp() * 1000), "id": turn_id, "named": f"{turn_id}:%"},
                )
    finally:
        engine.dispose()


def counts_of(output: str) -> dict[str, int]:
    """The `name<TAB>count` lines `kennel prune` prints."""
    found = {}
    for line in output.splitlines():
        name, _, number = line.partition("\t")
        if number.isdigit():
            found[name] = int(number)
    return found


@contextlib.contextmanager
def traffic(server: LiveServer, key: str) -> Iterator[list[int]]:
    """Requests sent one after another until the block ends: their status codes."""
    statuses: list[int] = []
    stop = threading.Event()

    def send() -> None:
        with server.http(key) as http:
            worker = http.post("/api/workers", json={"instructions": "Say hello"}).json()["id"]
            n = 0
            while not stop.is_set():
                n += 1
                r = http.post("/api/tasks", json={"input": f"Busy {n}", "workerId": worker})
                statuses.append(r.status_code)
                statuses.append(http.get("/api/tasks", params={"workerId": worker}).status_code)
                statuses.append(http.get(f"/api/workers/{worker}").status_code)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join(timeout=60)


def run_cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`kennel ARGS` with the server's environment, whatever its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "kennel", *args],
        env=server.env,
        cwd=server.log_path.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_prune_counts_then_deletes_while_the_server_serves(live_server: LiveServer) -> None:
    old_member = live_server.create_member()
    new_member = live_server.create_member()
    old = make_tasks(live_server, old_member.key, 60)
    new = make_tasks(live_server, new_member.key, 3)
    age_organization(live_server, old_member.organization_id)

    dry = live_server.cli("prune", "--days", "30", "--dry-run")
    assert counts_of(dry.stdout)["tasks"] == 60
    assert counts_of(dry.stdout)["turns"] == 60
    assert counts_of(dry.stdout)["dbos_workflows"] >= 60
    assert "would delete" in dry.stdout
    with live_server.http(old_member.key) as http:
        assert http.get(f"/api/tasks/{old[0]}").status_code == 200  # nothing deleted

    with traffic(live_server, new_member.key) as statuses:
        live_server.wait_for("some requests", lambda: len(statuses) >= 3)
        done = live_server.cli("prune", "--days", "30")
        during = len(statuses)
    assert counts_of(done.stdout) == counts_of(dry.stdout)
    assert during > 3
    assert [s for s in statuses if s >= 400] == []

    with live_server.http(old_member.key) as http:
        assert http.get(f"/api/tasks/{old[0]}").status_code == 404
        assert http.get(f"/api/tasks/{old[-1]}").status_code == 404
    with live_server.http(new_member.key) as http:
        for public_id in new:
            assert http.get(f"/api/tasks/{public_id}").status_code == 200
    again = live_server.cli("prune", "--days", "30")
    assert counts_of(again.stdout)["tasks"] == 0


def test_prune_needs_a_period(live_server: LiveServer) -> None:
    done = run_cli(live_server, "prune")
    assert done.returncode == 2
    assert "give --days N or set KENNEL_RETENTION_DAYS" in done.stderr
    zero = run_cli(live_server, "prune", "--days", "0")
    assert zero.returncode == 2
    assert "--days" in zero.stderr


def test_a_bad_retention_setting_is_refused_by_name(live_server: LiveServer) -> None:
    env = {**live_server.env, "KENNEL_RETENTION_DAYS": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "kennel", "prune", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "KENNEL_RETENTION_DAYS" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_server_prunes_by_itself_with_a_retention_period(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path) as database_url:
        with start_live_server(tmp_path / "first", database_url, backend=backend) as server:
            member = server.create_member()
            made = make_tasks(server, member.key, 3)
        age_organization(server, member.organization_id)
        with start_live_server(
            tmp_path / "second",
            database_url,
            backend=backend,
            extra_env={"KENNEL_RETENTION_DAYS": "30"},
        ) as server:
            line = server.wait_for(
                "the hourly prune",
                lambda: next((x for x in server.log_text().splitlines() if "pruned" in x), None),
            )
            assert "3 tasks, 3 turns" in line, line
            with server.http(member.key) as http:
                assert http.get(f"/api/tasks/{made[0]}").status_code == 404


def test_backup_while_the_server_writes(live_server: LiveServer, tmp_path: Path) -> None:
    copy = tmp_path / "kennel-backup.sqlite3"
    if live_server.backend != "sqlite":
        done = run_cli(live_server, "backup", str(copy))
        assert done.returncode == 2
        assert "pg_dump" in done.stderr
        assert not copy.exists()
        return
    member = live_server.create_member()
    make_tasks(live_server, member.key, 2)
    with traffic(live_server, member.key) as statuses:
        live_server.wait_for("some requests", lambda: len(statuses) >= 6)
        done = live_server.cli("backup", str(copy))
        time.sleep(0.5)  # and some more after it
    assert [s for s in statuses if s >= 400] == []
    assert "integrity ok" in done.stdout
    with contextlib.closing(sqlite3.connect(copy)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tasks = db.execute(
            "SELECT count(*) FROM tasks WHERE organization_id = ?", (member.organization_id,)
        ).fetchone()[0]
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
    assert tasks >= 2
    assert not copy.with_name(f".{copy.name}.partial").exists()
    again = run_cli(live_server, "backup", str(copy))
    assert again.returncode == 1
    assert "exists" in again.stderr


def test_a_backup_restores_into_a_working_server(live_server: LiveServer, tmp_path: Path) -> None:
    """SQLite: `kennel backup`; PostgreSQL: the README's pg_dump and pg_restore commands."""
    member = live_server.create_member()
    made = make_tasks(live_server, member.key, 1)
    if live_server.backend == "sqlite":
        copy = tmp_path / "copy.sqlite3"
        live_server.cli("backup", str(copy))
        with start_live_server(tmp_path / "restored", f"sqlite:///{copy}") as restored:
            assert_task_readable(restored, member.key, made[0])
        return
    source = live_server.env["KENNEL_DATABASE_URL"]
    dump = tmp_path / "kennel.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", source], check=True)
    target = make_url(source).set(database=f"{make_url(source).database}_restored")
    admin = make_url(source).set(database="postgres").render_as_string(hide_password=False)
    subprocess.run(["psql", admin, "-c", f'CREATE DATABASE "{target.database}"'], check=True)
    try:
        url = target.render_as_string(hide_password=False)
        subprocess.run(["pg_restore", "--no-owner", f"--dbname={url}", str(dump)], check=True)
        with start_live_server(tmp_path / "restored", url, backend="postgresql") as restored:
            assert_task_readable(restored, member.key, made[0])
    finally:
        subprocess.run(
            ["psql", admin, "-c", f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'],
            check=True,
        )


def assert_task_readable(server: LiveServer, key: str, public_id: str) -> None:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        r = http.get(f"/api/tasks/{public_id}")
        assert r.status_code == 200, r.text
        assert r.json()["task"]["status"] == "completed"
