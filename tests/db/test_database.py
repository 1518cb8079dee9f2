"""`db.read()` and `db.write()` on both backends: what commits, what rolls back, what joins."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from fastapi import FastAPI
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from kennel.db import Database
from kennel.models import organizations
from kennel.timestamps import utcnow

_COUNT = (
    select(func.count())
    .select_from(organizations)
    .where(organizations.c.name.like(bindparam("prefix")))
)


@pytest.fixture
def db(app: FastAPI) -> Database:
    return app.state.runtime.db  # type: ignore[no-any-return]


def _org(name: str) -> dict[str, object]:
    return {"id": f"org_{secrets.token_hex(8)}", "name": name, "created_at": utcnow()}


async def _count(db: Database, prefix: str) -> int:
    async with db.read() as r:
        return int(await r.scalar(_COUNT, {"prefix": f"{prefix}%"}))


async def test_a_write_commits_when_the_block_ends(db: Database) -> None:
    prefix = secrets.token_hex(6)
    async with db.write() as w:
        assert await w.execute(insert(organizations), _org(f"{prefix}-a")) == 1
        await w.execute(insert(organizations), [_org(f"{prefix}-b"), _org(f"{prefix}-c")])
        async with db.read() as r:  # reads through the write: sees its own rows
            assert await r.scalar(_COUNT, {"prefix": f"{prefix}%"}) == 3
    assert await _count(db, prefix) == 3


async def test_an_error_in_the_block_writes_nothing(db: Database) -> None:
    prefix = secrets.token_hex(6)

    async def change_of_mind() -> None:
        async with db.write() as w:
            await w.execute(insert(organizations), _org(f"{prefix}-a"))
            raise RuntimeError("the service changed its mind")

    with pytest.raises(RuntimeError):
        await change_of_mind()
    assert await _count(db, prefix) == 0
    async with db.write() as w:  # and nothing stays held
        await w.execute(insert(organizations), _org(f"{prefix}-b"))
    assert await _count(db, prefix) == 1


async def test_a_constraint_is_sqlalchemys_integrity_error_and_nothing_is_kept(
    db: Database,
) -> None:
    prefix = secrets.token_hex(6)

    async def twice() -> None:
        async with db.write() as w:
            await w.execute(insert(organizations), _org(f"{prefix}-a"))
            await w.execute(insert(organizations), _org(f"{prefix}-a"))  # the name is unique

    with pytest.raises(IntegrityError):
        await twice()
    assert await _count(db, prefix) == 0


async def test_a_write_inside_a_write_joins_it(db: Database) -> None:
    """A service that writes and calls another that writes: one transaction, no waiting (on
    SQLite the inner block would otherwise wait for the lock its own task holds)."""
    prefix = secrets.token_hex(6)

    async def inner() -> None:
        async with db.write() as w:
            await w.execute(insert(organizations), _org(f"{prefix}-inner"))

    async def outer() -> None:
        async with db.write() as w:
            await w.execute(insert(organizations), _org(f"{prefix}-outer"))
            await inner()
            raise RuntimeError("roll back both")

    with pytest.raises(RuntimeError):
        await asyncio.wait_for(outer(), timeout=5)
    assert await _count(db, prefix) == 0  # the inner write was part of the outer one


async def test_a_snapshot_sees_one_state(db: Database) -> None:
    prefix = secrets.token_hex(6)
    async with db.read() as r:
        before = await r.scalar(_COUNT, {"prefix": f"{prefix}%"})

        async def write_elsewhere() -> None:
            async with db.write() as w:
                await w.execute(insert(organizations), _org(f"{prefix}-x"))

        await asyncio.create_task(write_elsewhere())
        assert await r.scalar(_COUNT, {"prefix": f"{prefix}%"}) == before
    assert await _count(db, prefix) == before + 1


async def test_text_statements_and_scalars(db: Database) -> None:
    async with db.read(snapshot=False) as r:
        assert await r.scalar(text("SELECT 41 + 1")) == 42
        assert (await r.first(text("SELECT 1 AS one"))).one == 1
        assert await r.first(select(organizations.c.id).where(organizations.c.id == "nope")) is None
