"""PostgreSQL: SQLAlchemy's async engine on asyncpg.

- No pre-ping: it cost a round trip on every checkout. A connection that turns out dropped at
  the first statement of a block is replaced and the statement sent once more (nothing of the
  block has happened yet, so that is safe); later in a block, the error goes to the caller.
- `read(snapshot=False)`: each statement in autocommit, with no BEGIN or ROLLBACK round trips.
- `read()`: a `REPEATABLE READ READ ONLY` transaction, so that its statements see one state
  (under READ COMMITTED a worker, its task and its turns could each be read at another moment).
- `write()`: a READ COMMITTED transaction that commits at the end of the block.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Executable
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from kennel.db import Params, Read, Write

__all__ = ["PostgresDatabase"]

_held: contextvars.ContextVar[tuple[asyncio.Task[Any] | None, _Handle] | None] = (
    contextvars.ContextVar("kennel_postgres_write", default=None)
)


class _Handle:
    """`Read` and `Write` on one connection, which it replaces once if it was dropped before
    its first statement."""

    __slots__ = ("_conn", "_engine", "_fresh", "_transaction")

    def __init__(self, engine: AsyncEngine, conn: AsyncConnection, *, transaction: bool) -> None:
        self._engine = engine
        self._conn = conn
        self._transaction = transaction
        self._fresh = True

    async def first(self, statement: Executable, params: Params = None) -> Any | None:
        return (await self._run(statement, params)).first()

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Any]:
        return (await self._run(statement, params)).all()

    async def scalar(self, statement: Executable, params: Params = None) -> Any:
        return (await self._run(statement, params)).scalar()

    async def execute(self, statement: Executable, params: Params = None) -> int:
        result = await self._run(statement, params)
        count = result.rowcount
        result.close()
        return count

    async def _run(self, statement: Executable, params: Params) -> CursorResult[Any]:
        try:
            result = await self._conn.execute(statement, params)
        except sa_exc.DBAPIError as error:
            if not (self._fresh and error.connection_invalidated):
                raise
            await self._reconnect()
            result = await self._conn.execute(statement, params)
        self._fresh = False
        return result

    async def _reconnect(self) -> None:
        await self._conn.close()
        self._conn = await self._engine.connect()
        if self._transaction:
            await self._conn.begin()

    async def close(self) -> None:
        await self._conn.close()

    async def commit(self) -> None:
        await self._conn.commit()


class PostgresDatabase:
    backend = "postgresql"

    def __init__(self, url: URL) -> None:
        self._engine = create_async_engine(
            url.set(drivername="postgresql+asyncpg"), pool_size=10, max_overflow=40
        )
        self._autocommit = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._snapshots = self._engine.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )

    @asynccontextmanager
    async def read(self, *, snapshot: bool = True) -> AsyncIterator[Read]:
        held = _held.get()
        if held is not None and held[0] is asyncio.current_task():
            yield held[1]
            return
        engine = self._snapshots if snapshot else self._autocommit
        handle = _Handle(engine, await engine.connect(), transaction=False)
        try:
            yield handle  # a snapshot ends with a rollback: nothing was written
        finally:
            await handle.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Write]:
        task = asyncio.current_task()
        held = _held.get()
        if held is not None and held[0] is task:
            yield held[1]  # joins the outer block, which commits
            return
        conn = await self._engine.connect()
        await conn.begin()
        handle = _Handle(self._engine, conn, transaction=True)
        token = _held.set((task, handle))
        try:
            try:
                yield handle
            finally:
                _held.reset(token)
            await handle.commit()
        finally:
            await handle.close()  # rolls back what was not committed

    async def dispose(self) -> None:
        await self._engine.dispose()
