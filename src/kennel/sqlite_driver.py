"""SQLite for the async engine without a thread per connection.

SQLAlchemy's aiosqlite driver sends every DBAPI call (cursor, execute, fetch, close, commit) to a
thread of its own and back: measured here, about 0.7 ms of CPU per statement, against 0.02 ms
for the same statement run directly, and it was most of the cost of a request. A SQLite
statement on a local file is CPU work of microseconds, like the JSON encoding around it, so this
driver runs it on the event loop itself, behind the interface SQLAlchemy's aiosqlite dialect
expects (so sessions, the ORM and PostgreSQL code are unchanged).

What it must never do is block the loop on a lock. Its connections wait for nothing inside
SQLite (`busy_timeout` 0); where SQLite says another connection holds the lock, it waits with
`asyncio.sleep` and tries again:
- Write transactions (`BEGIN IMMEDIATE`) first queue on a per-loop `asyncio.Lock`, so the
  writers of this process take turns in order without polling; only a writer of another
  process (or DBOS's own threads) makes one sleep and retry.
- In WAL mode readers never wait for writers; the rare busy reader is retried the same way.
A statement that SQLite refused with SQLITE_BUSY had no effect, so repeating it is safe.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["PRAGMAS", "connect", "connect_now", "retry_busy", "take_write_lock"]

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.05

_write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _write_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _write_locks.get(loop)
    if lock is None:
        lock = _write_locks[loop] = asyncio.Lock()
    return lock


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _BUSY_CODES


class _Cursor:
    __slots__ = ("_connection", "_cursor")

    def __init__(self, connection: Connection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        await self._connection._run(self._cursor.execute, sql, parameters or ())
        return self

    async def executemany(self, sql: str, seq_of_parameters: Any) -> _Cursor:
        await self._connection._run(self._cursor.executemany, sql, seq_of_parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *sizes: Any) -> None:
        return None

    def __aiter__(self) -> Any:
        return self._rows()

    async def _rows(self) -> Any:
        for row in self._cursor:
            yield row

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _RunAtOnce:
    """Stands in for aiosqlite's request queue, which SQLAlchemy uses to set isolation_level."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Any]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:  # handed to the awaiting caller, as aiosqlite does
            future.set_exception(error)


class Connection:
    """The part of `aiosqlite.Connection` that SQLAlchemy's aiosqlite dialect uses."""

    def __init__(self, conn: sqlite3.Connection, *, immediate: bool, busy_timeout: float) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn
        self._tx = _RunAtOnce()
        self._immediate = immediate
        self._busy_timeout = busy_timeout
        self._holds_write_lock: asyncio.Lock | None = None

    # -- what SQLAlchemy calls ------------------------------------------------------------------

    def cursor(self) -> _Cursor:
        return _Cursor(self, self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> _Cursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        try:
            await self._retry_busy(self._conn.commit)
        finally:
            self._release_write_lock()

    async def rollback(self) -> None:
        try:
            self._conn.rollback()
        finally:
            self._release_write_lock()

    async def close(self) -> None:
        self._release_write_lock()
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        self._release_write_lock()
        self._connection = None
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    # -- waiting without blocking the loop -------------------------------------------------------

    async def _run(self, method: Any, *args: Any) -> Any:
        if not self._conn.in_transaction:
            await self._begin()
        return await self._retry_busy(method, *args)

    async def _begin(self) -> None:
        """Every statement runs in a transaction, begun here rather than by a `begin` event
        (a statement through the engine costs ten times one sent here)."""
        if not self._immediate:
            await self._retry_busy(self._conn.execute, "BEGIN")
            return
        if self._holds_write_lock is None:
            self._holds_write_lock = await take_write_lock(self._busy_timeout)
        try:
            await self._retry_busy(self._conn.execute, "BEGIN IMMEDIATE")
        except BaseException:
            self._release_write_lock()
            raise

    async def _retry_busy(self, method: Any, *args: Any) -> Any:
        return await retry_busy(self._busy_timeout, method, *args)

    def _release_write_lock(self) -> None:
        lock, self._holds_write_lock = self._holds_write_lock, None
        if lock is not None and lock.locked():
            lock.release()


async def take_write_lock(timeout: float) -> asyncio.Lock:
    """This loop's writers' lock, acquired (in order of arrival) before `BEGIN IMMEDIATE`; the
    caller releases it once the transaction has ended."""
    lock = _write_lock()
    if not lock.locked():  # the usual case: no task to wrap the wait in
        await lock.acquire()
        return lock
    try:
        await asyncio.wait_for(lock.acquire(), timeout)
    except TimeoutError:
        raise sqlite3.OperationalError("database is locked") from None
    return lock


async def retry_busy(timeout: float, method: Any, *args: Any) -> Any:
    """`method(*args)`, repeated after growing pauses while SQLite answers busy, for up to
    `timeout` seconds; then SQLite's own error."""
    try:  # the usual case, without the retry loop's set-up
        return method(*args)
    except sqlite3.OperationalError as error:
        if not _is_busy(error):
            raise
    deadline = time.monotonic() + timeout
    for pause in _pauses():
        await asyncio.sleep(pause)
        try:
            return method(*args)
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or time.monotonic() >= deadline:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def connect_now(path: str) -> sqlite3.Connection:
    """A plain connection for reads run on the loop: autocommit, no waiting inside SQLite."""
    return sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)


def _pauses() -> Iterator[float]:
    pause = _FIRST_PAUSE
    while True:
        yield pause
        pause = min(pause * 2, _LONGEST_PAUSE)


PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=0")


async def connect(path: str, *, immediate: bool, busy_timeout: float = 30.0) -> Connection:
    """A connection for `create_async_engine(..., async_creator=...)`, in WAL mode. Its
    transactions begin with the first statement: `BEGIN IMMEDIATE` (the write lock, waited for
    as above) when `immediate`, else a plain `BEGIN`, whose reads see one snapshot."""
    conn = connect_now(path)
    connection = Connection(conn, immediate=immediate, busy_timeout=busy_timeout)
    for pragma in PRAGMAS:
        await connection._retry_busy(conn.execute, f"PRAGMA {pragma}")
    return connection
