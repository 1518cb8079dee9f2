"""SQLite: a synchronous Core engine on the standard `sqlite3` driver, run on the event loop.

A statement on a local SQLite file is CPU work of microseconds, like the JSON encoding around
it, so it runs on the event loop itself: a hop to a thread and back (what the aiosqlite driver
does for every call) cost more than the statement. SQLAlchemy runs the statements; the
transaction boundaries are issued here, on the driver connection, because the one thing a
statement on the loop must never do is wait inside SQLite for a lock:

- Connections wait for nothing inside SQLite (`timeout=0`, `busy_timeout=0`). Where SQLite
  answers busy, the statement is repeated after an `asyncio.sleep`: a statement refused with
  SQLITE_BUSY had no effect, so repeating it is safe.
- A write transaction is `BEGIN IMMEDIATE`. The writers of one process first take turns on
  one `asyncio.Lock`, in order of arrival and without polling; only a writer of another process
  (or DBOS's threads, which share the file) makes one sleep and retry.
- In WAL mode readers never wait for writers; a read block is a deferred `BEGIN`, so its
  statements see one snapshot.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Executable, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import CursorResult

from kennel.db import Params, Read, Write
from kennel.db._sqlite_plans import _Plan, _plan_of

__all__ = ["SYNCHRONOUS", "SqliteDatabase"]

_BUSY_TIMEOUT_SECONDS = 30.0
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.05
# Every connection to the file, DBOS's too (`kennel.core.durable`): in WAL mode a commit survives a
# crash of the process without an fsync of its own; a power cut may lose the last few.
SYNCHRONOUS = "PRAGMA synchronous=NORMAL"
_PRAGMAS = (SYNCHRONOUS, "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=0")
_IDLE_CONNECTIONS = 16
_T = TypeVar("_T")

# The write block the current task holds, so that a nested read or write joins it.
_held: contextvars.ContextVar[tuple[asyncio.Task[Any] | None, _Handle] | None] = (
    contextvars.ContextVar("kennel_sqlite_write", default=None)
)
_write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


class _Handle:
    """`Read` and `Write` on one SQLAlchemy connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def first(self, statement: Executable, params: Params = None) -> Any | None:
        plan = _plan_of(statement, params)
        if plan is not None:
            raw = (await self._retry_busy(self._select, plan, params)).fetchone()
            return plan.make_row(raw) if raw is not None else None
        return (await self._retry_busy(self._execute, statement, params)).first()

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Any]:
        plan = _plan_of(statement, params)
        if plan is not None:
            rows = (await self._retry_busy(self._select, plan, params)).fetchall()
            return [plan.make_row(raw) for raw in rows]
        return (await self._retry_busy(self._execute, statement, params)).all()

    async def scalar(self, statement: Executable, params: Params = None) -> Any:
        row = await self.first(statement, params)
        return row[0] if row is not None else None

    async def execute(self, statement: Executable, params: Params = None) -> int:
        result = await self._retry_busy(self._execute, statement, params)
        count = result.rowcount
        result.close()
        return count

    def _execute(self, statement: Executable, params: Params) -> CursorResult[Any]:
        return self._conn.execute(statement, params)

    def _select(self, plan: _Plan, params: Any) -> sqlite3.Cursor:
        try:
            return _driver(self._conn).execute(plan.sql, plan.parameters(params))
        except sqlite3.Error as error:
            raise _as_sqlalchemy_error(plan.sql, error) from error

    async def _retry_busy(self, run: Callable[..., _T], *args: Any) -> _T:
        """`run(*args)`, repeated after growing pauses while SQLite answers busy."""
        try:  # the usual case, without the retry loop's set-up
            return run(*args)
        except sa_exc.OperationalError as error:
            if not _is_busy(error.orig):
                raise
        deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
        for pause in _pauses():
            await asyncio.sleep(pause)
            try:
                return run(*args)
            except sa_exc.OperationalError as error:
                if not _is_busy(error.orig) or time.monotonic() >= deadline:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


class SqliteDatabase:
    backend = "sqlite"

    def __init__(self, path: str) -> None:
        self._engine = create_engine(
            f"sqlite:///{path}",
            # Transactions are begun and ended here (see the module's docstring).
            isolation_level="AUTOCOMMIT",
            connect_args={"timeout": 0, "check_same_thread": False},
            # A connection is a file handle: keep enough that requests rarely open one, and
            # never make the loop wait for one (-1: no limit on overflow).
            pool_size=16,
            max_overflow=-1,
            hide_parameters=True,  # errors are logged; values can be secrets
        )
        event.listen(self._engine, "connect", _on_connect)
        # Connections kept checked out between blocks: the pool's checkout and return cost
        # more than a short block's statements. Only the loop's thread uses them.
        self._idle: list[Connection] = []

    def _take(self) -> Connection:
        return self._idle.pop() if self._idle else self._engine.connect()

    def _give_back(self, conn: Connection) -> None:
        """Back to the idle list with no transaction open; closed if that cannot be made so."""
        try:
            driver = _driver(conn)
            if driver.in_transaction:
                driver.execute("ROLLBACK")
        except sqlite3.Error:
            conn.invalidate()
            conn.close()
            return
        if len(self._idle) < _IDLE_CONNECTIONS and not conn.invalidated:
            self._idle.append(conn)
        else:
            conn.close()

    @asynccontextmanager
    async def read(self, *, snapshot: bool = True) -> AsyncIterator[Read]:
        held = _held.get()
        if held is not None and held[0] is asyncio.current_task():
            yield held[1]
            return
        conn = self._take()
        try:
            if snapshot:
                await _retry_busy_sql(_driver(conn).execute, "BEGIN")
            yield _Handle(conn)
        finally:
            self._give_back(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Write]:
        task = asyncio.current_task()
        held = _held.get()
        if held is not None and held[0] is task:
            yield held[1]  # joins the outer block, which commits
            return
        lock = await _take_write_lock()
        try:
            conn = self._take()
            try:
                driver = _driver(conn)
                await _retry_busy_sql(driver.execute, "BEGIN IMMEDIATE")
                handle = _Handle(conn)
                token = _held.set((task, handle))
                try:
                    yield handle
                finally:
                    _held.reset(token)
                # An error after which SQLite rolled back by itself makes this fail, not vanish.
                await _retry_busy_sql(driver.execute, "COMMIT")
            finally:
                self._give_back(conn)  # rolled back, if the block raised or COMMIT failed
        finally:
            lock.release()

    async def dispose(self) -> None:
        while self._idle:
            self._idle.pop().close()
        self._engine.dispose()


def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    for pragma in _PRAGMAS:
        dbapi_connection.execute(pragma)
    try:  # persistent, and set by the migrations already: this only checks
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as error:
        if not _is_busy(error):
            raise


def _driver(conn: Connection) -> sqlite3.Connection:
    return conn.connection.dbapi_connection  # type: ignore[return-value]  # pysqlite's


async def _take_write_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _write_locks.get(loop)
    if lock is None:
        lock = _write_locks[loop] = asyncio.Lock()
    if not lock.locked():  # the usual case: no task to wrap the wait in
        await lock.acquire()
        return lock
    try:
        await asyncio.wait_for(lock.acquire(), _BUSY_TIMEOUT_SECONDS)
    except TimeoutError:
        raise _as_sqlalchemy_error(
            "BEGIN IMMEDIATE", sqlite3.OperationalError("database is locked")
        ) from None
    return lock


async def _retry_busy_sql(method: Callable[[str], Any], sql: str) -> None:
    """`method(sql)`, repeated after growing pauses while SQLite answers busy, up to the
    timeout; errors as SQLAlchemy's."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_SECONDS
    pauses = _pauses()
    while True:
        try:
            method(sql)
            return
        except sqlite3.Error as error:
            if not _is_busy(error) or time.monotonic() >= deadline:
                raise _as_sqlalchemy_error(sql, error) from error
        await asyncio.sleep(next(pauses))


def _as_sqlalchemy_error(sql: str, error: sqlite3.Error) -> sa_exc.DBAPIError:
    wrapped = sa_exc.DBAPIError.instance(sql, None, error, sqlite3.Error)
    assert isinstance(wrapped, sa_exc.DBAPIError)
    return wrapped


def _is_busy(error: BaseException | None) -> bool:
    code = getattr(error, "sqlite_errorcode", 0)
    return isinstance(error, sqlite3.OperationalError) and (code & 0xFF) in _BUSY_CODES


def _pauses() -> Iterator[float]:
    pause = _FIRST_PAUSE
    while True:
        yield pause
        pause = min(pause * 2, _LONGEST_PAUSE)
