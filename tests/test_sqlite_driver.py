"""The SQLite driver that runs statements on the event loop: it must wait for locks without
ever blocking the loop, keep writers in turn, and give up with SQLite's own error in the end."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text

from kennel import sqlite_driver
from kennel.db import Database
from tests.conftest import make_settings


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    path = tmp_path / "driver.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (n INTEGER)")
    database = Database.open(make_settings(f"sqlite:///{path}", tmp_path / "data"))
    yield database
    await database.dispose()


class Ticker:
    """Counts event-loop turns while a test waits: a blocked loop does not count."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.ticks += 1

    def __enter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def rows(db: Database) -> list[int]:
    async with db.session(write=False) as s:
        return [n for (n,) in await s.execute(text("SELECT n FROM t ORDER BY n"))]


async def test_writers_of_one_process_take_turns_without_blocking_the_loop(db: Database) -> None:
    order: list[str] = []
    first_holds_lock = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with db.session() as s:
            await s.execute(text("INSERT INTO t VALUES (1)"))
            first_holds_lock.set()
            await release_first.wait()  # holds SQLite's write lock across an await
            await s.commit()
            order.append("first")

    async def second() -> None:
        await first_holds_lock.wait()
        async with db.session() as s:
            await s.execute(text("INSERT INTO t VALUES (2)"))
            await s.commit()
            order.append("second")

    with Ticker() as ticker:
        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await first_holds_lock.wait()
        await asyncio.sleep(0.2)
        assert order == []  # the second writer waits ...
        assert ticker.ticks >= 10  # ... and the loop runs meanwhile
        release_first.set()
        await asyncio.gather(*tasks)
    assert order == ["first", "second"]
    assert await rows(db) == [1, 2]


async def test_readers_do_not_wait_for_a_writer(db: Database) -> None:
    async with db.session() as writer:
        await writer.execute(text("INSERT INTO t VALUES (1)"))
        assert await asyncio.wait_for(rows(db), 1) == []  # the snapshot before the write
        await writer.commit()
    assert await rows(db) == [1]


def hold_write_lock(path: str, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (0)")
    locked.set()
    threading.Event().wait(seconds)
    conn.execute("COMMIT")
    conn.close()


async def test_a_writer_waits_for_another_process_with_sleeps_not_a_blocked_loop(
    db: Database, tmp_path: Path
) -> None:
    locked = threading.Event()
    other = threading.Thread(
        target=hold_write_lock, args=(str(tmp_path / "driver.db"), 0.3, locked)
    )
    other.start()
    await asyncio.to_thread(locked.wait)
    with Ticker() as ticker:
        async with db.session() as s:
            await s.execute(text("INSERT INTO t VALUES (5)"))
            await s.commit()
        assert ticker.ticks >= 10
    other.join()
    assert await rows(db) == [0, 5]


async def test_a_lock_held_too_long_ends_in_sqlites_error_and_frees_the_next_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "short.db"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (n INTEGER)")
    locked = threading.Event()
    other = threading.Thread(target=hold_write_lock, args=(str(path), 0.6, locked))
    other.start()
    await asyncio.to_thread(locked.wait)
    conn = await sqlite_driver.connect(str(path), immediate=True, busy_timeout=0.1)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await conn.execute("INSERT INTO t VALUES (1)")
    other.join()
    # The failed BEGIN left nothing held: the same connection and a new one both write.
    await conn.execute("INSERT INTO t VALUES (1)")
    await conn.commit()
    again = await sqlite_driver.connect(str(path), immediate=True, busy_timeout=0.1)
    await again.execute("INSERT INTO t VALUES (2)")
    await again.commit()
    for c in (conn, again):
        await c.close()
    with sqlite3.connect(path) as check:
        assert [n for (n,) in check.execute("SELECT n FROM t ORDER BY n")] == [0, 1, 2]


async def test_a_rolled_back_writer_frees_the_lock(db: Database) -> None:
    async def fail_mid_transaction() -> None:
        async with db.session() as s:
            await s.execute(text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("boom")  # the session rolls back on close

    with pytest.raises(RuntimeError):
        await fail_mid_transaction()
    async with db.session() as s:
        await asyncio.wait_for(s.execute(text("INSERT INTO t VALUES (2)")), 1)
        await s.commit()
    assert await rows(db) == [2]
