"""PostgreSQL: statements compiled by SQLAlchemy, run on asyncpg connections held here.

Through SQLAlchemy's async engine a one-row SELECT cost 166 us of CPU on a held connection, and
a checkout 49 us more, against 62 us for the same SQL sent to asyncpg: `GET /api/workers/{id}`
stayed at a tenth of `/healthz`. So every statement is compiled by SQLAlchemy's PostgreSQL
dialect for asyncpg (`db._plans`: the same SQL, bind casts and type processors as SQLAlchemy's
execution, Python-side column defaults and expanding IN lists included), and sent with
asyncpg, whose prepared statements are cached per connection. Errors are SQLAlchemy's
(`IntegrityError` for a constraint). `tests/db/test_postgres.py` holds the rows to the ones
SQLAlchemy's execution gives.

- Connections: kept idle per event loop (asyncpg's belong to the loop that opened them), up
  to `max_connections` open (the HTTP or the SMTP listener's share of
  `KENNEL_DATABASE_CONNECTIONS`); no ping. One unused for `_IDLE_SECONDS` is closed, down to
  `_IDLE_FLOOR` kept, so an idle process holds few. A connection found dropped at the first
  statement of a block is replaced and the statement sent once more (nothing of the block has
  happened yet, so that is safe); later in a block, the error goes to the caller.
- `read(snapshot=False)`: each statement in autocommit, with no BEGIN or ROLLBACK round trips.
- `read()`: a `REPEATABLE READ READ ONLY` transaction, so that its statements see one state
  (under READ COMMITTED a worker, its task and its turns could each be read at another moment).
- `write()`: a READ COMMITTED transaction that commits at the end of the block.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from sqlalchemy import ClauseElement, Executable, Select, TextClause, UpdateBase
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.sql.compiler import SQLCompiler

from kennel.db import Params, Read, Write
from kennel.db._plans import Plans, row_type, value_processors

__all__ = ["PostgresDatabase"]

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it untyped
MAX_CONNECTIONS = 20  # per event loop, unless told (Settings.connection_shares)
_IDLE_SECONDS = 60.0  # an idle connection unused this long is closed...
_IDLE_FLOOR = 2  # ...unless it is one of the last few of its loop
_STATEMENT_CACHE = 512  # asyncpg's prepared statements per connection (default 100)
_BEGIN_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_BEGIN_WRITE = "BEGIN"

# What asyncpg raises: a server's error, a misuse or broken protocol state, the socket's error.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)

_held: contextvars.ContextVar[tuple[asyncio.Task[Any] | None, _Handle] | None] = (
    contextvars.ContextVar("kennel_postgres_write", default=None)
)


@dataclass(frozen=True, slots=True)
class _Plan:
    compiled: SQLCompiler
    sql: str
    names: tuple[str, ...]  # the positional parameters ($1, $2, ...) by bind name
    bind_processors: Mapping[str, Callable[[Any], Any]]
    expanding: bool  # an IN list, rendered per execution
    prefetch: tuple[tuple[str, Any], ...]  # (parameter, column default) computed here
    returns_rows: bool
    row: Any | None  # a named tuple type; None: from the driver's record (text statements)
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]

    def arguments(self, params: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        """The SQL and its positional values for one set of parameters."""
        if self.prefetch:
            params = dict(params or {})
            for name, default in self.prefetch:
                if name not in params:
                    params[name] = default.arg(None) if default.is_callable else default.arg
        if self.expanding:
            state = self.compiled.construct_expanded_state(params)
            sql, names, values = state.statement, state.positiontup or (), state.parameters
            processors: Mapping[str, Callable[[Any], Any]] = {
                **self.bind_processors,
                **state.processors,
            }
        else:
            sql, names, processors = self.sql, self.names, self.bind_processors
            values = self.compiled.construct_params(params)
        out = []
        for name in names:
            value = values[name]
            process = processors.get(name)
            out.append(process(value) if process is not None else value)
        return sql, out

    def make_row(self, record: asyncpg.Record) -> Any:
        row = self.row if self.row is not None else _record_row(tuple(record.keys()))
        if not self.processors:
            return row._make(record)
        values = list(record)
        for index, process in self.processors:
            values[index] = process(values[index])
        return row._make(values)


@functools.lru_cache(maxsize=256)
def _record_row(names: tuple[str, ...]) -> Any:
    """The row type of a text statement's records: made once per set of column names, not per
    row (a named tuple type costs tens of microseconds to make)."""
    return row_type(names)


def _compile(statement: Executable, keys: tuple[str, ...]) -> _Plan:
    clause = cast(ClauseElement, statement)  # every Executable that kennel runs is one
    compiled = clause.compile(dialect=_DIALECT, column_keys=list(keys) or None)
    assert isinstance(compiled, SQLCompiler)
    bind_processors = {}
    expanding = False
    for name, bind in compiled.binds.items():
        expanding = expanding or bind.expanding
        process = bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
        if process is not None:
            bind_processors[compiled.escaped_bind_names.get(name, name)] = process
    prefetch = tuple(
        [(column.key, column.default) for column in compiled.insert_prefetch]
        + [(column.key, column.onupdate) for column in compiled.update_prefetch]
    )
    row: Any | None = None
    processors: tuple[tuple[int, Callable[[Any], Any]], ...] = ()
    returns_rows = True
    if isinstance(statement, Select):
        columns = list(statement.selected_columns)
    elif isinstance(statement, UpdateBase):
        columns = list(statement.exported_columns)
        returns_rows = bool(columns)
    else:
        assert isinstance(statement, TextClause), type(statement)
        columns = []
    if columns:
        row = row_type(column.key or "_" for column in columns)
        processors = value_processors(columns, _DIALECT)
    return _Plan(
        compiled=compiled,
        sql=compiled.string,
        names=tuple(compiled.positiontup or ()),
        bind_processors=bind_processors,
        expanding=expanding,
        prefetch=prefetch,
        returns_rows=returns_rows,
        row=row,
        processors=processors,
    )


_plans: Plans[_Plan] = Plans(_compile)


def _plan_of(statement: Executable, keys: tuple[str, ...]) -> _Plan:
    return _plans.of(statement, keys) or _compile(statement, keys)


def _keys_of(statement: Executable, params: Params) -> tuple[str, ...]:
    """The parameter names an INSERT or UPDATE compiles for (its columns depend on them)."""
    if not isinstance(statement, UpdateBase) or not params:
        return ()
    first = params[0] if isinstance(params, Sequence) else params
    return tuple(sorted(first))  # as SQLAlchemy's execution compiles it


class _Handle:
    """`Read` and `Write` on one connection, which it replaces once if it was dropped before
    its first statement."""

    __slots__ = ("_begin", "_conn", "_db", "_fresh")

    def __init__(self, db: PostgresDatabase, conn: asyncpg.Connection, begin: str | None) -> None:
        self._db = db
        self._conn = conn
        self._begin = begin  # sent with the first statement; None: autocommit
        self._fresh = True

    async def first(self, statement: Executable, params: Params = None) -> Any | None:
        plan, sql, args = self._prepare(statement, params)
        record = await self._send(self._conn.fetchrow, sql, args)
        return plan.make_row(record) if record is not None else None

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Any]:
        plan, sql, args = self._prepare(statement, params)
        return [plan.make_row(record) for record in await self._send(self._conn.fetch, sql, args)]

    async def scalar(self, statement: Executable, params: Params = None) -> Any:
        row = await self.first(statement, params)
        return row[0] if row is not None else None

    async def execute(self, statement: Executable, params: Params = None) -> int:
        items: Sequence[Mapping[str, Any] | None] = (
            params if isinstance(params, list) else [params]  # type: ignore[list-item]  # a Mapping or None here
        )
        keys = _keys_of(statement, params)
        plan = _plan_of(statement, keys)
        count = 0
        for item in items:
            sql, args = plan.arguments(item)
            if plan.returns_rows:
                count += len(await self._send(self._conn.fetch, sql, args))
            else:
                count += _row_count(await self._send(self._conn.execute, sql, args))
        return count

    def _prepare(self, statement: Executable, params: Params) -> tuple[_Plan, str, list[Any]]:
        if params is not None and not isinstance(params, Mapping):
            raise TypeError("a list of parameters is for execute(), not a read")
        plan = _plan_of(statement, _keys_of(statement, params))
        return (plan, *plan.arguments(params))

    async def _send(self, method: Callable[..., Any], sql: str, args: list[Any]) -> Any:
        try:
            if self._fresh:
                self._fresh = False
                try:
                    if self._begin is not None:
                        await self._conn.execute(self._begin)
                    return await method(sql, *args)
                except _DRIVER_ERRORS as error:
                    if not _dropped(self._conn, error):
                        raise
                # Dropped while idle: nothing of the block has happened, so send it again.
                self._conn = await self._db._replace(self._conn)
                method = getattr(self._conn, method.__name__)
                if self._begin is not None:
                    await self._conn.execute(self._begin)
            return await method(sql, *args)
        except _DRIVER_ERRORS as error:
            raise _as_sqlalchemy_error(sql, error, self._conn) from error

    async def commit(self) -> None:
        if self._begin is not None and not self._fresh:
            try:
                await self._conn.execute("COMMIT")
            except _DRIVER_ERRORS as error:
                raise _as_sqlalchemy_error("COMMIT", error, self._conn) from error
            self._begin = None  # nothing left to roll back

    @property
    def in_transaction(self) -> bool:
        return self._begin is not None and not self._fresh


def _row_count(status: str) -> int:
    """Rows matched, from asyncpg's command status (`UPDATE 3`, `INSERT 0 1`)."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


class PostgresDatabase:
    backend = "postgresql"

    def __init__(self, url: URL, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._max_connections = max_connections
        # Per loop: (connection, when it came back), the most recently used last.
        self._idle: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[tuple[asyncpg.Connection, float]]
        ] = weakref.WeakKeyDictionary()
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._reaping: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._open: set[asyncpg.Connection] = set()

    async def _take(self) -> asyncpg.Connection:
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self._max_connections)
        await slots.acquire()
        idle = self._idle.get(loop)
        if idle:
            return idle.pop()[0]
        try:
            return await self._connect()
        except BaseException:
            slots.release()
            raise

    async def _connect(self) -> asyncpg.Connection:
        try:
            conn = await asyncpg.connect(self._dsn, statement_cache_size=_STATEMENT_CACHE)
            await _set_json_codecs(conn)
        except _DRIVER_ERRORS as error:
            raise _as_sqlalchemy_error("connect", error, None) from error
        self._open.add(conn)
        return conn

    async def _replace(self, conn: asyncpg.Connection) -> asyncpg.Connection:
        """A new connection in place of a dropped one (the slot stays taken)."""
        self._open.discard(conn)
        conn.terminate()
        return await self._connect()

    async def _give_back(self, handle: _Handle) -> None:
        """Back to the idle list with no transaction open; closed if that cannot be made so."""
        loop = asyncio.get_running_loop()
        conn = handle._conn
        try:
            if handle.in_transaction and not conn.is_closed():
                await conn.execute("ROLLBACK")
        except _DRIVER_ERRORS:
            conn.terminate()
        finally:
            if conn.is_closed():
                self._open.discard(conn)
            else:
                self._idle.setdefault(loop, []).append((conn, loop.time()))
                if loop not in self._reaping:
                    self._reaping.add(loop)
                    loop.call_later(_IDLE_SECONDS, self._reap, loop)
            self._slots[loop].release()

    def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the loop's connections unused for `_IDLE_SECONDS`, keeping `_IDLE_FLOOR`;
        look again later while more than that are idle."""
        idle = self._idle.get(loop, [])
        cutoff = loop.time() - _IDLE_SECONDS
        stale = 0
        while stale < len(idle) - _IDLE_FLOOR and idle[stale][1] < cutoff:
            stale += 1
        closing, idle[:stale] = [conn for conn, _ in idle[:stale]], []
        for conn in closing:
            self._open.discard(conn)
            loop.create_task(_close_quietly(conn))
        if len(idle) > _IDLE_FLOOR:
            loop.call_later(_IDLE_SECONDS / 2, self._reap, loop)
        else:
            self._reaping.discard(loop)

    @asynccontextmanager
    async def read(self, *, snapshot: bool = True) -> AsyncIterator[Read]:
        held = _held.get()
        if held is not None and held[0] is asyncio.current_task():
            yield held[1]
            return
        handle = _Handle(self, await self._take(), _BEGIN_SNAPSHOT if snapshot else None)
        try:
            yield handle  # a snapshot ends with a rollback: nothing was written
        finally:
            await self._give_back(handle)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Write]:
        task = asyncio.current_task()
        held = _held.get()
        if held is not None and held[0] is task:
            yield held[1]  # joins the outer block, which commits
            return
        handle = _Handle(self, await self._take(), _BEGIN_WRITE)
        token = _held.set((task, handle))
        try:
            try:
                yield handle
            finally:
                _held.reset(token)
            await handle.commit()
        finally:
            await self._give_back(handle)  # rolls back what was not committed

    async def dispose(self) -> None:
        idle, self._idle = self._idle, weakref.WeakKeyDictionary()
        for conns in idle.values():
            for conn, _ in conns:
                self._open.discard(conn)
                await conn.close()
        for conn in list(self._open):  # still checked out (a block that never ended)
            conn.terminate()
        self._open.clear()


async def _close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=5)
    except (TimeoutError, *_DRIVER_ERRORS):
        conn.terminate()


async def _set_json_codecs(conn: asyncpg.Connection) -> None:
    """JSON as SQLAlchemy's asyncpg dialect sets it: its JSON type's bind processor makes the
    text, the codec parses what comes back."""
    await conn.set_type_codec(
        "json",
        encoder=str.encode,
        decoder=lambda data: json.loads(data.decode()),
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode(),  # jsonb's binary format: a version byte
        decoder=lambda data: json.loads(data[1:].decode()),
        schema="pg_catalog",
        format="binary",
    )


def _as_sqlalchemy_error(
    sql: str, error: BaseException, conn: asyncpg.Connection | None
) -> sa_exc.DBAPIError:
    """The SQLAlchemy exception its asyncpg dialect would raise (parameters left out: they can
    hold secrets)."""
    kind: type[sa_exc.DBAPIError]
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        kind = sa_exc.IntegrityError
    elif isinstance(error, asyncpg.DataError):
        kind = sa_exc.DataError
    elif isinstance(error, asyncpg.SyntaxOrAccessError):
        kind = sa_exc.ProgrammingError
    elif isinstance(error, asyncpg.PostgresError):
        kind = sa_exc.OperationalError if _is_operational(error) else sa_exc.DBAPIError
    else:
        kind = sa_exc.OperationalError
    invalidated = conn is None or conn.is_closed()
    return kind(sql, None, error, hide_parameters=True, connection_invalidated=invalidated)


def _dropped(conn: asyncpg.Connection, error: BaseException) -> bool:
    """Whether the error says the connection is gone (closed, broken, or its server process
    terminated: 57P01), rather than that the statement failed."""
    if conn.is_closed() or not isinstance(error, asyncpg.PostgresError):
        return True
    sqlstate = getattr(error, "sqlstate", "") or ""
    return sqlstate[:2] == "08" or sqlstate == "57P01"


def _is_operational(error: asyncpg.PostgresError) -> bool:
    sqlstate = getattr(error, "sqlstate", "") or ""
    # 08: connection exception, 53: insufficient resources, 55: not in a state to (a database
    # refusing connections, a lock not available), 57: operator intervention,
    # 40: transaction rollback (serialization failure, deadlock).
    return sqlstate[:2] in {"08", "53", "55", "57", "40"}
