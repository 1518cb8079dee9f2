"""The queue read at scrape time: right counts, from the small partial index only."""

from __future__ import annotations

import sqlite3

import httpx
from fastapi import FastAPI
from sqlalchemy.dialects import postgresql, sqlite

from kennel.metrics import repository as repo
from kennel.tasks import control
from kennel.tasks import repository as tasks_repo
from tests.factories import Member
from tests.tasks.test_control import pending_turn


async def in_flight(app: FastAPI) -> repo.InFlight:
    async with app.state.runtime.db.read() as r:
        return await repo.in_flight(r)


async def test_a_pending_then_running_turn_is_counted_where_it_is(
    app: FastAPI, client: httpx.AsyncClient, member: Member
) -> None:
    db = app.state.runtime.db
    before = await in_flight(app)
    started = await pending_turn(app, client, member)  # recorded, never queued
    waiting = await in_flight(app)
    assert (waiting.pending, waiting.running) == (before.pending + 1, before.running)
    assert waiting.oldest_pending_at is not None
    assert waiting.oldest_pending_at <= started.turn.created_at
    async with db.write() as w:
        assert await tasks_repo.start_turn(w, started.turn.id)
    running = await in_flight(app)
    assert (running.pending, running.running) == (before.pending, before.running + 1)
    async with db.write() as w:
        await control.abort_turn(w, started.turn.id, "Counted.")
    ended = await in_flight(app)
    assert (ended.pending, ended.running) == (before.pending, before.running)


async def test_the_count_reads_the_in_flight_index(app: FastAPI) -> None:
    settings = app.state.runtime.settings
    if settings.is_sqlite:
        sql = str(repo._BY_STATUS.compile(dialect=sqlite.dialect()))
        with sqlite3.connect(settings.database_url_object.database) as conn:
            plan = " ".join(str(row) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING COVERING INDEX ix_turns_in_flight" in plan, plan
        return
    import psycopg

    sql = str(repo._BY_STATUS.compile(dialect=postgresql.dialect()))
    with psycopg.connect(settings.sync_database_url.replace("+psycopg", "")) as conn:
        conn.execute("SET enable_seqscan = off")  # a near-empty table is scanned whole anyway
        plan = " ".join(row[0] for row in conn.execute(f"EXPLAIN {sql}"))
    assert "ix_turns_in_flight" in plan, plan
