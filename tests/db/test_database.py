"""`db.read()` and `db.write()` on both backends: what commits, what rolls back, what joins."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Select, bindparam, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from kennel.auth import repository as auth_repo
from kennel.auth.keys import hash_key
from kennel.core.timestamps import utcnow
from kennel.db import Database
from kennel.models import organizations
from kennel.tasks import repository as tasks_repo
from kennel.workers import repository as workers_repo
from kennel.workspaces import repository as workspaces_repo
from tests.factories import Member
from tests.factories.tasks import post_task
from tests.factories.workers import new_worker_id

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


async def test_what_sqlalchemys_execution_would_do(db: Database) -> None:
    """Statements the backends compile and send themselves keep SQLAlchemy's meaning: Python
    column defaults, expanding IN lists, RETURNING, rows matched, JSON and time zones."""
    from sqlalchemy import update

    from kennel.models import workers

    prefix = secrets.token_hex(6)
    by_ids = select(organizations.c.name).where(
        organizations.c.id.in_(bindparam("ids", expanding=True))
    )
    renamed = (
        update(organizations)
        .where(organizations.c.name.like(bindparam("prefix")))
        .values(name=organizations.c.name + "!")
    )
    insert_returning = insert(organizations).returning(organizations.c.id, organizations.c.name)
    for attempt in range(3):  # the second and third times, from the kept plans
        name = f"{prefix}-{attempt}"
        async with db.write() as w:
            row = await w.first(insert_returning, {"id": f"org_{name}", "name": name})
            assert row is not None
            assert tuple(row) == (f"org_{name}", name)
            assert (row.id, row.name) == (f"org_{name}", name)  # named as the columns
        async with db.read() as r:
            created = await r.scalar(
                select(organizations.c.created_at).where(organizations.c.id == f"org_{name}")
            )
            assert created is not None
            assert created.utcoffset() is not None
            ids = [f"org_{prefix}-{n}" for n in range(attempt + 1)]
            assert sorted(await r.all(by_ids, {"ids": ids})) == sorted(
                (f"{prefix}-{n}",) for n in range(attempt + 1)
            )
    async with db.write() as w:
        assert await w.execute(renamed, {"prefix": f"{prefix}-%"}) == 3
        assert await w.execute(renamed, {"prefix": "nothing-matches-%"}) == 0
    assert await _count(db, f"{prefix}-_!") == 3
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    async with db.read() as r:
        assert await r.first(select(workers.c.output_schema).where(workers.c.id == "none")) is None
    org_id = f"org_{prefix}-0"
    async with db.write() as w:
        user = {"id": f"usr_{prefix}", "organization_id": org_id, "email": f"{prefix}@x.test"}
        from kennel.models import users

        await w.execute(insert(users), user)
        for worker_id, output_schema in ((f"wrk_{prefix}a", schema), (f"wrk_{prefix}b", None)):
            await w.execute(
                insert(workers),
                {
                    "id": worker_id,
                    "organization_id": org_id,
                    "user_id": user["id"],
                    "title": "T",
                    "summary": "",
                    "instructions": "",
                    "instructions_version": 1,
                    "output_schema": output_schema,
                    "visibility": "private",
                    "email_local_part": worker_id,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                },
            )
    async with db.read() as r:
        got = await r.all(
            select(workers.c.id, workers.c.output_schema)
            .where(workers.c.id.like(f"wrk_{prefix}%"))
            .order_by(workers.c.id)
        )
    assert [tuple(row) for row in got] == [(f"wrk_{prefix}a", schema), (f"wrk_{prefix}b", None)]


async def test_an_error_names_the_statement_but_not_its_values(db: Database) -> None:
    secret = f"secret-{secrets.token_hex(6)}"
    org = _org(secrets.token_hex(6))
    async with db.write() as w:
        await w.execute(insert(organizations), org)
    with pytest.raises(IntegrityError) as raised:  # the same id, a name that is a secret
        async with db.write() as w:
            await w.execute(insert(organizations), {**org, "name": secret})
    assert "INSERT INTO organizations" in str(raised.value)
    assert secret not in str(raised.value)


async def test_hot_selects_give_the_rows_sqlalchemy_gives(
    app: FastAPI, db: Database, client: Any, member: Member
) -> None:
    """Each hot statement, once it runs from its plan, returns what SQLAlchemy's execution
    returns on the same driver: the same names, values and types (time zones, JSON)."""
    worker_id = await new_worker_id(
        client, member, outputSchema={"type": "object", "properties": {"a": {"type": "string"}}}
    )
    r = await post_task(client, member, input="Write a file named out.txt", workerId=worker_id)
    assert r.status_code == 200, r.text
    task_id = r.json()["metadata"]["taskId"]
    turn_id = r.json()["metadata"]["turnId"]
    caller = member.caller
    async with db.read() as read:
        task = await tasks_repo.by_public_id(read, member.organization_id, task_id)
    assert task is not None
    statements: list[tuple[Select[Any], dict[str, Any]]] = [
        (auth_repo._OWNER_OF_KEY, {"key_hash": hash_key(member.key)}),
        (workers_repo._VISIBLE, {"worker_id": worker_id, **workers_repo.caller_params(caller)}),
        (workers_repo._BY_ID, {"worker_id": worker_id}),
        (
            tasks_repo._VISIBLE_WORKER_LATEST_TASK_AND_TURNS,
            {"worker_id": worker_id, **workers_repo.caller_params(caller)},
        ),
        (tasks_repo._BY_ID, {"task_id": task.id}),
        (tasks_repo._TURNS_OF, {"task_id": task.id}),
        (tasks_repo._TURN, {"turn_id": turn_id}),
        (tasks_repo._FILES_OF_TASK, {"task_id": task.id}),
        (workspaces_repo._LISTING, {"worker_id": worker_id, "limit": 10}),
        (workspaces_repo._OF_PATH, {"worker_id": worker_id, "path": "out.txt"}),
    ]
    async with db.read() as read:
        written = await workspaces_repo.of_path(read, worker_id, "out.txt")
    assert written is not None
    statements.append((workspaces_repo._CHUNK, {"file_id": written.id, "seq": 0}))
    settings = app.state.runtime.settings
    if db.backend == "sqlite":
        from kennel.db._sqlite_plans import plans
    else:
        from kennel.db.postgres import _plans as plans
    reference = create_async_engine(
        settings.database_url_object.set(
            drivername="sqlite+aiosqlite" if db.backend == "sqlite" else "postgresql+asyncpg"
        )
    )
    try:
        for statement, params in statements:
            async with reference.connect() as conn:
                result = await conn.execute(statement, params)
                expected_names = list(result.keys())
                expected = [tuple(row) for row in result.all()]
            for _ in range(2):  # the second time, from the kept plan
                async with db.read() as read:
                    rows = await read.all(statement, params)
            assert plans.kept[id(statement)][0] is statement
            assert rows, statement  # each finds something, so the values are compared
            assert [tuple(row) for row in rows] == expected, statement
            assert [type(v) for v in rows[0]] == [type(v) for v in expected[0]], statement
            assert list(rows[0]._fields) == expected_names
    finally:
        await reference.dispose()
