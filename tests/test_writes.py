"""`kennel.writes`: short Core write transactions, on both backends.

On SQLite the writer runs precompiled statements with the `sqlite3` module; these tests hold it
to what SQLAlchemy reads back (names, values, JSON, datetimes), to all-or-nothing commits, to
SQLAlchemy's errors, and to taking turns with the ORM's writers without blocking the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from kennel.ids import new_id
from kennel.models import Worker
from kennel.models.base import new_row
from kennel.reads import compile_for_sqlite
from kennel.timestamps import utcnow
from kennel.workers.repository import WORKER_ROW
from tests.factories import Member
from tests.test_sqlite_driver import Ticker

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}
_INSERT = Worker.__table__.insert()
_RETITLE = (
    update(Worker.__table__)
    .where(Worker.__table__.c.id == bindparam("b_id"))
    .values(title=bindparam("b_title"))
    .returning(Worker.__table__.c.id, Worker.__table__.c.updated_at)
)


def a_worker(member: Member, **values: Any) -> Any:
    worker_id = new_id("wrk")
    return new_row(
        Worker,
        id=worker_id,
        organization_id=member.organization_id,
        user_id=member.user_id,
        title="Written",
        email_local_part=f"w-{worker_id[-12:]}",
        **values,
    )


async def through_sqlalchemy(app: FastAPI, worker_id: str) -> Any:
    async with app.state.db.engine.connect() as conn:
        return (await conn.execute(WORKER_ROW, {"worker_id": worker_id})).first()


async def test_a_committed_row_reads_back_as_sqlalchemy_wrote_it(
    app: FastAPI, member: Member
) -> None:
    worker = a_worker(member, output_schema=SCHEMA, summary="s", visibility="private")
    async with app.state.db.writer.transaction() as tx:
        assert await tx.execute(_INSERT, worker) == 1
        # The transaction sees its own writes.
        assert (await tx.first(WORKER_ROW, {"worker_id": worker.id})).title == "Written"
    row = await through_sqlalchemy(app, worker.id)
    assert row is not None
    assert row._asdict() == dict(worker)
    assert row.output_schema == SCHEMA
    assert row.created_at.tzinfo is not None


async def test_returning_and_row_counts(app: FastAPI, member: Member) -> None:
    worker = a_worker(member)
    async with app.state.db.writer.transaction() as tx:
        await tx.execute(_INSERT, worker)
        changed = await tx.first(_RETITLE, {"b_id": worker.id, "b_title": "Renamed"})
        assert changed.id == worker.id
        assert changed.updated_at == worker.updated_at  # converted back to a datetime
        assert await tx.first(_RETITLE, {"b_id": "wrk_none", "b_title": "x"}) is None
        assert await tx.execute(Worker.__table__.delete().where(Worker.id == "wrk_none")) == 0
    assert (await through_sqlalchemy(app, worker.id)).title == "Renamed"


async def test_an_error_in_the_block_rolls_everything_back(app: FastAPI, member: Member) -> None:
    worker = a_worker(member)

    async def write_then_fail() -> None:
        async with app.state.db.writer.transaction() as tx:
            await tx.execute(_INSERT, worker)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await write_then_fail()
    assert await through_sqlalchemy(app, worker.id) is None
    async with app.state.db.writer.transaction() as tx:  # nothing is left held
        await asyncio.wait_for(tx.execute(_INSERT, worker), 1)
    assert await through_sqlalchemy(app, worker.id) is not None


async def test_a_constraint_is_sqlalchemys_integrity_error_and_nothing_is_kept(
    app: FastAPI, member: Member
) -> None:
    taken = a_worker(member)
    async with app.state.db.writer.transaction() as tx:
        await tx.execute(_INSERT, taken)
    fresh = a_worker(member)

    async def write_then_clash() -> None:
        async with app.state.db.writer.transaction() as tx:
            await tx.execute(_INSERT, fresh)
            await tx.execute(_INSERT, {**a_worker(member), "id": taken.id})

    with pytest.raises(IntegrityError):
        await write_then_clash()
    assert await through_sqlalchemy(app, fresh.id) is None


def test_dml_compiles_per_set_of_parameters_and_names_missing_columns() -> None:
    finish = update(Worker.__table__).where(Worker.__table__.c.id == bindparam("b_id"))
    one = compile_for_sqlite(finish, {"b_id": 1, "title": "t"})
    two = compile_for_sqlite(finish, {"b_id": 1, "title": "t", "summary": "s"})
    assert "summary" not in one.sql
    assert "summary" in two.sql
    assert compile_for_sqlite(finish, {"title": "u", "b_id": 2}) is one
    with pytest.raises(TypeError, match="created_at"):
        compile_for_sqlite(_INSERT, {"id": "wrk_1", "title": "t"})


@pytest.fixture
def sqlite_only(app: FastAPI) -> str:
    if not app.state.settings.is_sqlite:
        pytest.skip("SQLite's write lock")
    return app.state.settings.async_database_url.database


async def test_sqlite_writers_take_turns_with_the_orms_without_blocking_the_loop(
    app: FastAPI, member: Member, sqlite_only: str
) -> None:
    order: list[str] = []
    session_holds_lock = asyncio.Event()
    release = asyncio.Event()
    orm_worker, core_worker = a_worker(member), a_worker(member)

    async def through_the_orm() -> None:
        async with app.state.db.session() as s:
            conn = await s.connection()
            await conn.execute(_INSERT, orm_worker)
            session_holds_lock.set()
            await release.wait()  # holds SQLite's write lock across an await
            await s.commit()
            order.append("orm")

    async def through_the_writer() -> None:
        await session_holds_lock.wait()
        async with app.state.db.writer.transaction() as tx:
            await tx.execute(_INSERT, core_worker)
        order.append("writer")

    with Ticker() as ticker:
        tasks = [asyncio.create_task(through_the_orm()), asyncio.create_task(through_the_writer())]
        await session_holds_lock.wait()
        await asyncio.sleep(0.2)
        assert order == []  # the writer waits its turn ...
        assert ticker.ticks >= 10  # ... and the loop runs meanwhile
        release.set()
        await asyncio.gather(*tasks)
    assert order == ["orm", "writer"]


async def test_sqlite_writer_waits_for_another_process_with_sleeps(
    app: FastAPI, member: Member, sqlite_only: str
) -> None:
    locked, done = threading.Event(), threading.Event()

    def other_process() -> None:
        conn = sqlite3.connect(sqlite_only, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        done.wait(0.3)
        conn.execute("COMMIT")
        conn.close()

    other = threading.Thread(target=other_process)
    other.start()
    await asyncio.to_thread(locked.wait)
    worker = a_worker(member)
    with Ticker() as ticker:
        began = utcnow()
        async with app.state.db.writer.transaction() as tx:
            await tx.execute(_INSERT, worker)
        assert (utcnow() - began).total_seconds() >= 0.2
        assert ticker.ticks >= 10
    other.join()
    assert await through_sqlalchemy(app, worker.id) is not None


async def test_sqlite_writer_connections_enforce_foreign_keys(
    app: FastAPI, member: Member, sqlite_only: str
) -> None:
    orphan = a_worker(member)
    orphan["organization_id"] = "org_missing"
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        async with app.state.db.writer.transaction() as tx:
            await tx.execute(_INSERT, orphan)
    async with app.state.db.engine.connect() as conn:
        found = await conn.execute(select(Worker.id).where(Worker.id == orphan.id))
        assert found.first() is None
