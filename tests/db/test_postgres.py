"""The PostgreSQL backend: no pre-ping, so a connection dropped while idle in the pool is
replaced at the first statement of the next block that takes it."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from kennel.db import open_database


async def test_a_dropped_connection_is_replaced_at_the_first_statement(app: FastAPI) -> None:
    settings = app.state.runtime.settings
    if settings.is_sqlite:
        pytest.skip("PostgreSQL only")
    db = open_database(settings)  # a database of its own: the app's DBOS keeps its connections
    try:
        async with db.read(snapshot=False) as r:
            first_pid = await r.scalar(text("SELECT pg_backend_pid()"))
        async with app.state.runtime.db.read(snapshot=False) as other:
            killed = await other.scalar(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid}
            )
        assert killed is True
        for snapshot in (False, True):
            async with db.read(snapshot=snapshot) as r:
                assert await r.scalar(text("SELECT 1")) == 1
        async with db.write() as w:
            assert await w.scalar(text("SELECT pg_backend_pid()")) != first_pid
    finally:
        await db.dispose()


async def test_a_loops_share_of_the_budget_bounds_its_connections(app: FastAPI) -> None:
    """Blocks past a loop's share of `KENNEL_DATABASE_CONNECTIONS` wait for a connection;
    none more is opened."""
    settings = app.state.runtime.settings
    if settings.is_sqlite:
        pytest.skip("PostgreSQL only")
    db = open_database(settings, connections=2)
    holding = peak = 0

    async def hold() -> None:
        nonlocal holding, peak
        async with db.read(snapshot=False) as r:
            holding += 1
            peak = max(peak, holding)
            await r.scalar(text("SELECT pg_sleep(0.1)"))
            holding -= 1

    try:
        await asyncio.gather(*(hold() for _ in range(6)))
        assert peak == 2  # six blocks at once, two at a time
    finally:
        await db.dispose()
