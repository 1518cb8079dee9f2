"""`kennel.reads`: the hot-path reads give the rows SQLAlchemy would, on both backends.

On SQLite the reader runs precompiled statements with the `sqlite3` module and converts values
with SQLAlchemy's type processors itself; these tests hold it to what a SQLAlchemy `Result`
gives for the same statement (names, values, types: JSON, datetimes, booleans, NULLs).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import StatementError

from kennel.auth import Caller
from kennel.auth.keys import hash_key
from kennel.auth.repository import _OWNER_OF_KEY
from kennel.models import Task
from kennel.reads import compile_for_sqlite
from kennel.tasks.repository import (
    FILES_OF_TASK,
    LATEST_TASK_ROW,
    TASK_ROW,
    TURN_ROWS,
    VISIBLE_TASK_ROW,
)
from kennel.workers.repository import VISIBLE_ROW_BY_ID, WORKER_ROW, caller_params
from tests.factories import Member
from tests.factories.api import new_worker_id, post_task

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}


async def through_sqlalchemy(app: FastAPI, statement: Any, params: dict[str, Any]) -> list[Any]:
    async with app.state.db.engine.connect() as conn:
        return list((await conn.execute(statement, params)).all())


async def test_rows_match_sqlalchemy_for_every_hot_statement(
    app: FastAPI, client: httpx.AsyncClient, member: Member
) -> None:
    worker_id = await new_worker_id(client, member, instructions="Be brief.", outputSchema=SCHEMA)
    r = await post_task(client, member, workerId=worker_id, input="Write a file named a.txt")
    assert r.status_code == 200, r.text
    task_id = r.json()["metadata"]["taskId"]
    caller = caller_params(Caller(member.user_id, member.organization_id, "member", "key"))
    cases = [
        (_OWNER_OF_KEY, {"key_hash": hash_key(member.key)}),
        (VISIBLE_ROW_BY_ID, {"worker_id": worker_id, **caller}),
        (WORKER_ROW, {"worker_id": worker_id}),
        (LATEST_TASK_ROW, {"worker_id": worker_id}),
        (TASK_ROW, {"task_id": task_id}),
        (TURN_ROWS, {"task_id": task_id}),
        (VISIBLE_TASK_ROW, {"task_id": task_id, **caller}),
        (FILES_OF_TASK, {"task_id": task_id}),
    ]
    reader = app.state.db.reader
    for statement, params in cases:
        expected = await through_sqlalchemy(app, statement, params)
        assert expected, statement  # each case finds something
        async with reader.snapshot() as read:
            got = list(await read.all(statement, params))
            first = await read.first(statement, params)
        assert got == [tuple(row) for row in expected]
        assert [row._fields for row in got] == [row._fields for row in expected]
        assert first == got[0]
        for ours, theirs in zip(got, expected, strict=True):
            assert [type(v) for v in ours] == [type(v) for v in theirs]
    worker = await reader.first(WORKER_ROW, {"worker_id": worker_id})
    assert worker.output_schema == SCHEMA  # JSON comes back as Python values
    assert worker.created_at.tzinfo is not None or worker.created_at.year > 2000


async def test_a_missing_row_is_none_and_a_missing_parameter_is_named(
    app: FastAPI, member: Member
) -> None:
    reader = app.state.db.reader
    assert await reader.first(WORKER_ROW, {"worker_id": "wrk_nope"}) is None
    with pytest.raises((KeyError, StatementError), match="worker_id"):  # SQLite's, SQLAlchemy's
        await reader.first(WORKER_ROW, {})


def test_fixed_values_and_limits_are_bound_from_the_statement() -> None:
    statement = (
        select(Task.id)
        .where(Task.worker_id == bindparam("worker_id"), Task.status == "completed")
        .limit(3)
    )
    prepared = compile_for_sqlite(statement)
    # In the order of the SQL's placeholders (SQLite renders LIMIT ? OFFSET ?).
    assert prepared.parameters({"worker_id": "w"})[:3] == ["w", "completed", 3]
    assert (
        prepared.sql.index("worker_id") < prepared.sql.index("status") < prepared.sql.index("LIMIT")
    )
    assert compile_for_sqlite(statement) is prepared  # compiled once


def test_only_core_statements_with_fixed_parameter_lists_are_accepted() -> None:
    with pytest.raises(TypeError, match="only SELECT, INSERT, UPDATE and DELETE"):
        compile_for_sqlite(text("SELECT 1"))
    with pytest.raises(TypeError, match="expands"):
        compile_for_sqlite(select(Task.id).where(Task.id.in_(bindparam("ids", expanding=True))))


async def test_a_snapshot_sees_one_state_while_others_write(
    app: FastAPI, client: httpx.AsyncClient, member: Member
) -> None:
    """Statements of one snapshot agree even when a write commits between them (on PostgreSQL
    this needs REPEATABLE READ: under READ COMMITTED the second read would see the new title)."""
    worker_id = await new_worker_id(client, member, instructions="Hi.", title="Before")
    reader = app.state.db.reader
    async with reader.snapshot() as read:
        first = await read.first(WORKER_ROW, {"worker_id": worker_id})
        r = await client.patch(
            f"/api/workers/{worker_id}", json={"title": "After"}, headers=member.headers
        )
        assert r.status_code == 200, r.text
        again = await read.first(WORKER_ROW, {"worker_id": worker_id})
    assert (first.title, again.title) == ("Before", "Before")
    assert (await reader.first(WORKER_ROW, {"worker_id": worker_id})).title == "After"
