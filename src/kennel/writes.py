"""Short write transactions outside the ORM, for the writes that run most often.

The ORM session's own cost dwarfs the statements of a small write: measured here, a request
holding the session and running one UPDATE cost twice the CPU of the same request running it
with the `sqlite3` module, before any of its work. Creating a worker, and starting and finishing
every turn, write a few rows whose values are decided before the transaction begins; they run
here. Everything else keeps the session (`kennel.db.SessionDep`).

The statements are SQLAlchemy Core statements built once, as in `kennel.reads`:

- On SQLite, `SqliteWriter` runs them with the `sqlite3` module on the event loop, compiled by
  `kennel.reads.compile_for_sqlite`. A transaction is `BEGIN IMMEDIATE` ... `COMMIT`, taken in
  turn with the ORM's writers of this process (`sqlite_driver.take_write_lock`), and waits for
  another process's writer with `asyncio.sleep`, never blocking the loop. The body of a
  transaction should not await anything but its statements: it holds SQLite's write lock.
  Nor may a task open one while its own ORM session holds a write transaction: both wait for
  the same lock (code that shares a session's transaction uses `on_connection`).
- On PostgreSQL, `EngineWriter` runs them in a transaction of the app's async engine.

Errors are SQLAlchemy's on both backends (`sqlalchemy.exc.IntegrityError` for a constraint).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import Executable
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kennel import sqlite_driver
from kennel.reads import IdleConnections, Params, Snapshot, _EngineSnapshot, _SqliteSnapshot

__all__ = ["EngineWriter", "SqliteWriter", "Transaction", "Writer", "on_connection"]


class Transaction(Snapshot, Protocol):
    """Reads (`first`, `all`, RETURNING included) and writes that commit together."""

    async def execute(self, statement: Executable, params: Params = None) -> int:
        """Run an INSERT, UPDATE or DELETE; the number of rows it matched."""


class Writer(Protocol):
    def transaction(self) -> Any:
        """An async context manager yielding a `Transaction`: it commits when the block ends
        and rolls back when the block raises."""

    async def dispose(self) -> None: ...


# --- PostgreSQL: the app's async engine ---------------------------------------------------------


class _EngineTransaction(_EngineSnapshot):
    __slots__ = ()

    async def execute(self, statement: Executable, params: Params = None) -> int:
        return (await self._conn.execute(statement, params)).rowcount  # type: ignore[attr-defined]


def on_connection(conn: AsyncConnection) -> Transaction:
    """The same statements in a transaction already open on a SQLAlchemy connection (an ORM
    session's: `await session.connection()`), for code that shares it."""
    return _EngineTransaction(conn)


class EngineWriter:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._engine.begin() as conn:
            yield _EngineTransaction(conn)

    async def dispose(self) -> None:
        """Nothing of its own: the Database disposes of its engine."""


# --- SQLite: the sqlite3 module on the event loop ----------------------------------------------


class _SqliteTransaction(_SqliteSnapshot):
    __slots__ = ()

    async def first(self, statement: Executable, params: Params = None) -> Any | None:
        with _as_sqlalchemy_error(statement, params):
            return await super().first(statement, params)

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Any]:
        with _as_sqlalchemy_error(statement, params):
            return await super().all(statement, params)

    async def execute(self, statement: Executable, params: Params = None) -> int:
        with _as_sqlalchemy_error(statement, params):
            _, cursor = await self._execute(statement, params)
        count = cursor.rowcount
        cursor.close()
        return count


class _as_sqlalchemy_error:
    """sqlite3's errors as the SQLAlchemy exceptions the PostgreSQL path raises."""

    __slots__ = ("_params", "_statement")

    def __init__(self, statement: Executable | str, params: Params) -> None:
        self._statement, self._params = statement, params

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        if isinstance(error, sqlite3.Error):
            raise sa_exc.DBAPIError.instance(
                str(self._statement),
                dict(self._params or {}),
                error,  # type: ignore[arg-type]
                sqlite3.Error,
                hide_parameters=True,  # values may be users' text: not for logs
            ) from error


class SqliteWriter:
    """`sqlite3` connections kept for reuse, each in WAL mode with foreign keys on."""

    def __init__(self, path: str, *, busy_timeout: float = 30.0) -> None:
        self._path = path
        self._timeout = busy_timeout
        # Writers take turns (and rarely wait inside a transaction): a few connections serve all.
        self._idle = IdleConnections(8)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        conn = self._idle.take() or await self._connect()
        try:
            lock = await sqlite_driver.take_write_lock(self._timeout)
            try:
                await sqlite_driver.retry_busy(self._timeout, conn.execute, "BEGIN IMMEDIATE")
                yield _SqliteTransaction(conn, self._timeout)
                # An error after which SQLite rolled back by itself makes this fail, not vanish.
                with _as_sqlalchemy_error("COMMIT", None):
                    await sqlite_driver.retry_busy(self._timeout, conn.execute, "COMMIT")
            finally:
                lock.release()
        finally:
            self._idle.give_back(conn)  # rolled back, if the block raised or COMMIT failed

    async def _connect(self) -> sqlite3.Connection:
        conn = sqlite_driver.connect_now(self._path)
        for pragma in sqlite_driver.PRAGMAS:
            await sqlite_driver.retry_busy(self._timeout, conn.execute, f"PRAGMA {pragma}")
        return conn

    async def dispose(self) -> None:
        self._idle.close_all()
