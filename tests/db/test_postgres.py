"""The PostgreSQL backend: no pre-ping, so a connection dropped while idle in the pool is
replaced at the first statement of the next block that takes it."""

from __future__ import annotations

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
