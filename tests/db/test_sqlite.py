"""The SQLite backend: statements on the event loop that never block it on a lock, and the
hot SELECTs it runs on the driver giving the rows SQLAlchemy's execution gives."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import insert

from kennel.auth import repository as auth_repo
from kennel.core.timestamps import utcnow
from kennel.db import Database
from kennel.db import _sqlite_plans as plans
from kennel.models import organizations


@pytest.fixture
def db(app: FastAPI) -> Database:
    if app.state.runtime.db.backend != "sqlite":
        pytest.skip("SQLite only")
    return app.state.runtime.db  # type: ignore[no-any-return]


def _path(db: Database) -> str:
    return str(db._engine.url.database)  # type: ignore[attr-defined]  # the SQLite backend's


async def test_a_writer_waits_for_another_process_with_sleeps_not_a_blocked_loop(
    db: Database,
) -> None:
    """Another process's (here: thread's own connection) write lock is waited for with
    asyncio.sleep: the loop goes on meanwhile."""
    held, release = threading.Event(), threading.Event()

    def other_process() -> None:
        conn = sqlite3.connect(_path(db), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(5)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=other_process)
    thread.start()
    await asyncio.to_thread(held.wait, 5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()

    async def write() -> None:
        async with db.write() as w:
            await w.scalar(auth_repo._OWNER_OF_KEY, {"key_hash": "none"})

    writing = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writing.done()  # waiting for the other writer ...
    assert ticks >= 10  # ... without blocking the loop
    release.set()
    await asyncio.wait_for(writing, timeout=5)
    assert time.monotonic() - started >= 0.3
    ticking.cancel()
    thread.join()


async def test_writers_of_other_tasks_take_turns(db: Database) -> None:
    """SQLite has one write lock: a second writer waits for the first, without blocking the
    loop (PostgreSQL lets writers of different rows go on at once)."""
    prefix = secrets.token_hex(6)
    order: list[str] = []
    first_holds = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with db.write() as w:
            await w.execute(insert(organizations), _org(f"{prefix}-1"))
            first_holds.set()
            await release.wait()
            order.append("first")

    async def second() -> None:
        await first_holds.wait()
        async with db.write() as w:
            await w.execute(insert(organizations), _org(f"{prefix}-2"))
            order.append("second")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await first_holds.wait()
    await asyncio.sleep(0.2)  # the loop keeps running while the second writer waits
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert order == ["first", "second"]
    assert await _count(db, prefix) == 2


async def test_a_read_does_not_wait_for_a_writer(db: Database) -> None:
    async with db.write():

        async def read() -> Any:
            async with db.read() as r:
                return await r.scalar(auth_repo._OWNER_OF_KEY, {"key_hash": "none"})

        # Another task's read, while this one holds the write lock (WAL: readers never wait).
        assert await asyncio.wait_for(asyncio.create_task(read()), timeout=1) is None


async def test_foreign_keys_are_enforced(db: Database) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from kennel.core.timestamps import utcnow
    from kennel.models import users

    async def orphan() -> None:
        async with db.write() as w:
            row = {"id": "usr_x", "organization_id": "org_missing", "email": "a@b.c"}
            await w.execute(insert(users), {**row, "role": "member", "created_at": utcnow()})

    with pytest.raises(IntegrityError):
        await orphan()


async def test_a_statement_built_per_call_runs_through_sqlalchemy(db: Database) -> None:
    from sqlalchemy import select

    from kennel.models import workers

    for _ in range(3):
        statement = select(workers.c.id).where(workers.c.id == "nope")
        async with db.read() as read:
            assert await read.first(statement) is None
        assert id(statement) not in plans.plans.kept


def _org(name: str) -> dict[str, object]:
    return {"id": f"org_{secrets.token_hex(8)}", "name": name, "created_at": utcnow()}


async def _count(db: Database, prefix: str) -> int:
    from sqlalchemy import func, select

    async with db.read() as r:
        query = select(func.count()).where(organizations.c.name.like(f"{prefix}%"))
        return int(await r.scalar(query))
