"""SELECTs on SQLite, compiled once and run on the driver: a private detail of `db.sqlite`.

Measured here (bench/db_statement.py), a one-row SELECT through SQLAlchemy's execution took
28 us of CPU on a held connection, against 6 us for the same SQL sent to `sqlite3`; most of
the difference is per-execution bookkeeping (execution context, parameter processing, result
metadata). Requests run three or four such statements, and `GET /api/workers/{id}` could not
reach its aim through SQLAlchemy's execution alone. So a SELECT that is executed a second time
as the same statement object (the module constants that repositories build once) is compiled
with SQLAlchemy's compiler, and then run with `sqlite3` directly, its values converted by the
same type processors SQLAlchemy would use. Everything else (DML, statements built per call,
expanding IN lists) goes through SQLAlchemy's execution. `tests/db/test_sqlite_plans.py`
holds the two paths to the same rows.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, Select
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

__all__ = ["_Plan", "_plan_of"]

_DIALECT = SQLiteDialect_pysqlite()
_REQUIRED = object()
_MAX_PLANS = 1024
_MAX_SEEN = 4096


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    # Per positional parameter: its name, the value the statement fixes (else _REQUIRED) and
    # the type's bind processor (None: the value goes as it is).
    binds: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    row: Any  # a named tuple type: the columns' names as attributes, as SQLAlchemy's rows
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column index, result processor)

    def parameters(self, params: Mapping[str, Any] | None) -> list[Any]:
        values = []
        for name, fixed, process in self.binds:
            if params is not None and name in params:
                value = params[name]
            elif fixed is _REQUIRED:
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
        return self.row._make(raw)


_plans: dict[int, tuple[Executable, _Plan | None]] = {}
_seen: dict[int, Executable] = {}


def _plan_of(statement: Executable, params: Any) -> _Plan | None:
    """The plan of a SELECT run before as this very object, or None (SQLAlchemy runs it)."""
    if not isinstance(statement, Select) or isinstance(params, list):
        return None
    key = id(statement)
    cached = _plans.get(key)
    if cached is not None and cached[0] is statement:
        return cached[1]
    if _seen.get(key) is not statement:  # the first time: a statement built per call, maybe
        if len(_seen) >= _MAX_SEEN:
            _seen.clear()
        _seen[key] = statement  # held, so its id is not reused while it is here
        return None
    if len(_plans) >= _MAX_PLANS:
        return None
    plan = _compile(statement)
    _plans[key] = (statement, plan)
    return plan


def _compile(statement: Select[Any]) -> _Plan | None:
    compiled = statement.compile(dialect=_DIALECT)
    binds = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        if bind.expanding:  # IN lists are rendered per execution
            return None
        fixed = _REQUIRED if bind.required or bind.callable else bind.effective_value
        binds.append((name, fixed, bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)))
    columns = list(statement.selected_columns)
    names: list[str] = []
    for column in columns:  # a repeated name gets a suffix, as in SQLAlchemy's rows: id, id_1
        name, n = column.key or "_", 0
        while name in names:
            n += 1
            name = f"{column.key}_{n}"
        names.append(name)
    processors = []
    for index, column in enumerate(columns):
        process = column.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
        if process is not None:
            processors.append((index, process))
    return _Plan(
        sql=compiled.string,
        binds=tuple(binds),
        row=namedtuple("Row", names, rename=True),
        processors=tuple(processors),
    )
