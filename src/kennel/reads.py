"""Reads outside the ORM: Core statements for the requests that run most often.

An ORM session costs far more than the statements of a small read: measured here, opening one,
running a statement in it and closing it took 0.35 ms of CPU, where the same statement through
a plain SQLAlchemy connection on SQLite takes 0.02 ms. Authentication (every request) and the
worker read use this instead. Rows have the statement's column names as attributes, which are
also the ORM attributes' names, so render code takes either.

The SQL is always written as SQLAlchemy Core statements, built once at import. How they run:

- On SQLite, `SqliteReader` compiles each statement once and then runs it with the `sqlite3`
  module directly, on the event loop, converting values with the same SQLAlchemy type
  processors a `Result` would use. Measured here, SQLAlchemy's per-execution work (execution
  context, result metadata, pool checkout) cost about 0.08 ms of CPU per statement, four times
  SQLite's own work for these one-row reads. Reads in WAL mode wait for no writer; the rare
  busy answer is retried after `asyncio.sleep`, as in `kennel.sqlite_driver`.
- On PostgreSQL, `EngineReader` runs them on the app's async engine.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Executable
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import UpdateBase

from kennel import sqlite_driver

__all__ = ["EngineReader", "Reader", "Snapshot", "SqliteReader"]

Params = Mapping[str, Any] | None


class Snapshot(Protocol):
    """Statements that see one state of the database."""

    async def first(self, statement: Executable, params: Params = None) -> Any | None: ...

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Any]: ...


class Reader(Protocol):
    """`first` for one statement; `snapshot()` for several that must agree."""

    async def first(self, statement: Executable, params: Params = None) -> Any | None: ...

    def snapshot(self) -> Any:
        """An async context manager yielding a `Snapshot`."""

    async def dispose(self) -> None: ...


# --- PostgreSQL: the app's async engine ---------------------------------------------------------


class _EngineSnapshot:
    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def first(self, statement: Executable, params: Params = None) -> Any | None:
        return (await self._conn.execute(statement, params)).first()

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Any]:
        return (await self._conn.execute(statement, params)).all()


class EngineReader:
    """One statement in autocommit (no BEGIN and ROLLBACK round trips); several in a read-only
    REPEATABLE READ transaction, so that they see one state (READ COMMITTED would not)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._single = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._snapshots = engine.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )

    async def first(self, statement: Executable, params: Params = None) -> Any | None:
        async with self._single.connect() as conn:
            return (await conn.execute(statement, params)).first()

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        async with self._snapshots.connect() as conn:  # ends with a rollback: nothing was written
            yield _EngineSnapshot(conn)

    async def dispose(self) -> None:
        """Nothing of its own: the Database disposes of its engine."""


# --- SQLite: compiled once, run with the sqlite3 module -------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # Per positional parameter: its name, its value when the statement fixes it (else
    # _FROM_PARAMS), and the type's bind processor (None: the value goes as it is).
    binds: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    row: Callable[..., Any]  # a named tuple type: the columns' names as attributes
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column index, result processor)

    def parameters(self, params: Params) -> list[Any]:
        values = []
        for name, fixed, process in self.binds:
            if params is not None and name in params:
                value = params[name]
            elif fixed is _FROM_PARAMS:
                raise KeyError(f"no value for the statement's parameter {name!r}")
            else:
                value = fixed
            values.append(process(value) if process is not None else value)
        return values

    def make_row(self, raw: tuple[Any, ...]) -> Any:
        if self.processors:
            values = list(raw)
            for index, process in self.processors:
                values[index] = process(values[index])
            raw = tuple(values)
        return self.row._make(raw)  # type: ignore[attr-defined]


_FROM_PARAMS = object()
_DIALECT = SQLiteDialect_pysqlite()
_compiled: dict[Any, tuple[Executable, _Compiled]] = {}


def compile_for_sqlite(statement: Executable, params: Params = None) -> _Compiled:
    """The statement as SQL for `sqlite3`, with its parameters and result conversions; cached
    by identity, so statements are meant to be built once (module constants).

    A SELECT compiles once. An INSERT, UPDATE or DELETE (`kennel.writes`) compiles once per set
    of parameter names, as SQLAlchemy's does: an INSERT or UPDATE without `.values()` sets the
    columns the parameters name, so those must name every column the row needs (no Python-side
    defaults are filled in here: `kennel.models.base.new_row` does that)."""
    if isinstance(statement, Select):
        key: Any = id(statement)
    elif isinstance(statement, UpdateBase):
        key = (id(statement), *sorted(params or ()))
    else:
        raise TypeError("only SELECT, INSERT, UPDATE and DELETE statements are precompiled")
    cached = _compiled.get(key)
    if cached is not None and cached[0] is statement:
        return cached[1]
    if isinstance(statement, Select):
        compiled = statement.compile(dialect=_DIALECT)
        columns = list(statement.selected_columns)
    else:
        compiled = statement.compile(dialect=_DIALECT, column_keys=sorted(params or ()))
        if compiled.insert_prefetch or compiled.update_prefetch:
            missing = [c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
            raise TypeError(f"no value for the columns {missing}; give every column's value")
        columns = list(statement.exported_columns)  # RETURNING, if any
    binds = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        if bind.expanding:  # IN lists are rendered per execution: not for this path
            raise TypeError(f"parameter {name!r} expands; it cannot be precompiled")
        fixed = _FROM_PARAMS if bind.required or bind.callable else bind.effective_value
        binds.append((name, fixed, bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)))
    names: list[str] = []
    for column in columns:  # a repeated name gets a suffix, as in SQLAlchemy's rows: id, id_1
        name, n = column.key, 0
        while name in names:
            n += 1
            name = f"{column.key}_{n}"
        names.append(name)
    processors = []
    for index, column in enumerate(columns):
        process = column.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
        if process is not None:
            processors.append((index, process))
    prepared = _Compiled(
        sql=compiled.string,
        binds=tuple(binds),
        row=namedtuple("Row", names, rename=True),  # type: ignore[misc]
        processors=tuple(processors),
    )
    _compiled[key] = (statement, prepared)
    return prepared


class _SqliteSnapshot:
    __slots__ = ("_conn", "_timeout")

    def __init__(self, conn: sqlite3.Connection, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout

    async def first(self, statement: Executable, params: Params = None) -> Any | None:
        prepared, cursor = await self._execute(statement, params)
        raw = cursor.fetchone()
        cursor.close()
        return prepared.make_row(raw) if raw is not None else None

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Any]:
        prepared, cursor = await self._execute(statement, params)
        return [prepared.make_row(raw) for raw in cursor.fetchall()]

    async def _execute(
        self, statement: Executable, params: Params
    ) -> tuple[_Compiled, sqlite3.Cursor]:
        prepared = compile_for_sqlite(statement, params)
        cursor = await sqlite_driver.retry_busy(
            self._timeout, self._conn.execute, prepared.sql, prepared.parameters(params)
        )
        return prepared, cursor


class IdleConnections:
    """`sqlite3` connections kept for reuse, each given back with no transaction open; one
    whose rollback fails is closed instead."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._idle: list[sqlite3.Connection] = []

    def take(self) -> sqlite3.Connection | None:
        return self._idle.pop() if self._idle else None

    def give_back(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:  # SQLite may have ended it already, after an error
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            conn.close()
            return
        if len(self._idle) < self._limit:
            self._idle.append(conn)
        else:
            conn.close()

    def close_all(self) -> None:
        while self._idle:
            self._idle.pop().close()


class SqliteReader:
    """Autocommit `sqlite3` connections kept for reuse; a snapshot is a `BEGIN`...`ROLLBACK`."""

    def __init__(self, path: str, *, busy_timeout: float = 30.0) -> None:
        self._path = path
        self._timeout = busy_timeout
        self._idle = IdleConnections(32)

    async def first(self, statement: Executable, params: Params = None) -> Any | None:
        conn = self._acquire()
        try:  # one statement is its own snapshot
            return await _SqliteSnapshot(conn, self._timeout).first(statement, params)
        finally:
            self._idle.give_back(conn)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        conn = self._acquire()
        try:
            await sqlite_driver.retry_busy(self._timeout, conn.execute, "BEGIN")
            yield _SqliteSnapshot(conn, self._timeout)
        finally:
            self._idle.give_back(conn)

    def _acquire(self) -> sqlite3.Connection:
        return self._idle.take() or sqlite_driver.connect_now(self._path)

    async def dispose(self) -> None:
        self._idle.close_all()
