"""Reads outside the ORM: Core statements for the requests that run most often.

An ORM session costs far more than the statements of a small read: measured here, opening one,
running a statement in it and closing it took 0.35 ms of CPU, where the same statement through
a plain SQLAlchemy connection on SQLite takes 0.02 ms. Authentication (every request) and the
worker read use this instead. Rows come back as SQLAlchemy `Row`s whose attributes are the
columns' names, which are also the ORM attributes' names, so render code takes either.

On SQLite a synchronous engine runs the statements on the event loop (reads in WAL mode wait for
no writer; the rare busy answer is retried after `asyncio.sleep`, as in `kennel.sqlite_driver`).
On PostgreSQL the app's async engine runs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import Engine, Executable, QueuePool, Row, create_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kennel import sqlite_driver

__all__ = ["Reader", "Snapshot"]

Params = Mapping[str, Any] | None


class Snapshot(Protocol):
    """Statements that see one state of the database."""

    async def first(self, statement: Executable, params: Params = None) -> Row[Any] | None: ...

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Row[Any]]: ...


class _SyncSnapshot:
    __slots__ = ("_conn", "_timeout")

    def __init__(self, conn: Any, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout

    async def first(self, statement: Executable, params: Params = None) -> Row[Any] | None:
        return await sqlite_driver.retry_busy(self._timeout, self._first, statement, params)

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Row[Any]]:
        return await sqlite_driver.retry_busy(self._timeout, self._all, statement, params)

    def _first(self, statement: Executable, params: Params) -> Row[Any] | None:
        return self._conn.execute(statement, params).first()

    def _all(self, statement: Executable, params: Params) -> Sequence[Row[Any]]:
        return self._conn.execute(statement, params).all()


class _AsyncSnapshot:
    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def first(self, statement: Executable, params: Params = None) -> Row[Any] | None:
        return (await self._conn.execute(statement, params)).first()

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Row[Any]]:
        return (await self._conn.execute(statement, params)).all()


class Reader:
    """`first` for one statement; `snapshot()` for several that must agree."""

    def __init__(self, engine: AsyncEngine | Engine, *, busy_timeout: float = 30.0) -> None:
        self._engine = engine
        self._timeout = busy_timeout

    @classmethod
    def sqlite(cls, path: str, *, busy_timeout: float) -> Reader:
        engine = create_engine(
            "sqlite://",
            creator=lambda: sqlite_driver.connect_now(path),
            poolclass=QueuePool,
            pool_size=32,
            max_overflow=64,
            pool_reset_on_return=None,
        )
        return cls(engine, busy_timeout=busy_timeout)

    async def first(self, statement: Executable, params: Params = None) -> Row[Any] | None:
        async with self.snapshot(begin=False) as read:
            return await read.first(statement, params)

    @asynccontextmanager
    async def snapshot(self, *, begin: bool = True) -> AsyncIterator[Snapshot]:
        engine = self._engine
        if isinstance(engine, AsyncEngine):
            async with engine.connect() as conn:  # ends with a rollback: nothing was written
                yield _AsyncSnapshot(conn)
            return
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            if not begin:  # one statement is its own snapshot
                yield _SyncSnapshot(conn, self._timeout)
                return
            await sqlite_driver.retry_busy(self._timeout, raw.execute, "BEGIN")
            try:
                yield _SyncSnapshot(conn, self._timeout)
            finally:
                if raw.in_transaction:  # SQLite may have ended it already, after an error
                    raw.execute("ROLLBACK")

    async def dispose(self) -> None:
        if isinstance(self._engine, AsyncEngine):
            return  # the Database disposes of its own engine
        self._engine.dispose()
