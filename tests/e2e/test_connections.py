"""A process holds at most `KENNEL_DATABASE_CONNECTIONS` PostgreSQL connections, Kennel's and
DBOS's together, however busy it is (issue 25, item 3); unused ones are closed.

Two processes on one database, a budget of 10 each, and 40 turns posted to both at once while
the test counts the database's connections in `pg_stat_activity`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from kennel.db import postgres
from kennel.db.postgres import PostgresDatabase
from tests.conftest import fresh_postgres_database
from tests.e2e.conftest import start_live_server

pytestmark = pytest.mark.e2e

BUDGET = 10
TASKS = 40
_PID = text("SELECT pg_backend_pid()")
_SLEEP = text("SELECT pg_sleep(0.1)")


def test_two_busy_processes_stay_within_their_budget(tmp_path: Path) -> None:
    env = {
        "KENNEL_DATABASE_CONNECTIONS": str(BUDGET),
        "KENNEL_OFFLINE_MODEL_DELAY_SECONDS": "0.2",
        "KENNEL_TASK_WAIT_SECONDS": "0",
    }
    counts: list[int] = []
    stop = threading.Event()
    with fresh_postgres_database() as url:
        dbname = make_url(url).database

        def count() -> None:
            with psycopg.connect(
                make_url(url).set(drivername="postgresql").render_as_string(False),
                autocommit=True,
            ) as conn:
                while not stop.is_set():
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()",
                        (dbname,),
                    ).fetchone()
                    counts.append(int(row[0]) if row else 0)
                    time.sleep(0.02)

        with (
            start_live_server(tmp_path / "a", url, extra_env=env) as a,
            start_live_server(tmp_path / "b", url, extra_env=env) as b,
        ):
            counter = threading.Thread(target=count)
            counter.start()
            try:
                with a.http(a.api_key) as on_a, b.http(a.api_key) as on_b:

                    def post(n: int) -> str:
                        http = on_a if n % 2 else on_b
                        r = http.post("/api/tasks", json={"input": f"Count to {n} please"})
                        assert r.status_code == 200, r.text
                        return str(r.json()["metadata"]["taskId"])

                    with ThreadPoolExecutor(16) as pool:
                        task_ids = list(pool.map(post, range(TASKS)))

                    def statuses() -> list[Any]:
                        return [
                            on_a.get(f"/api/tasks/{t}").json()["task"]["status"] for t in task_ids
                        ]

                    deadline = time.monotonic() + 90
                    while any(s in ("pending", "running") for s in statuses()):
                        assert time.monotonic() < deadline, statuses()
                        time.sleep(0.2)
                    ended = statuses()
            finally:
                stop.set()
                counter.join()

    assert ended == ["completed"] * TASKS
    assert counts
    assert max(counts) <= 2 * BUDGET, max(counts)


async def test_idle_connections_are_closed_down_to_a_few(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres, "_IDLE_SECONDS", 0.3)
    with fresh_postgres_database() as url:
        db = PostgresDatabase(make_url(url), max_connections=8)
        pids: set[int] = set()

        async def hold() -> None:
            async with db.read(snapshot=False) as r:
                pids.add(await r.scalar(_PID))
                await r.scalar(_SLEEP)

        try:
            await asyncio.gather(*(hold() for _ in range(8)))
            assert len(pids) == 8
            await asyncio.sleep(1.5)  # idle past _IDLE_SECONDS, looked at twice
            conn = await asyncpg.connect(url)
            try:
                alive = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])",
                    list(pids),
                )
            finally:
                await conn.close()
            assert alive == postgres._IDLE_FLOOR
            async with db.read() as r:  # and what is left still serves
                assert await r.scalar(_PID) in pids
        finally:
            await db.dispose()
