"""SELECTs on SQLite, compiled once and run on `sqlite3`: a private detail of `db.sqlite`.

A SELECT executed a second time as the same statement object runs from its plan (see
`db._plans`: 28 us of CPU through SQLAlchemy's execution against 6 us on the driver);
everything else (DML, statements built per call, expanding IN lists) goes through
SQLAlchemy's execution. `tests/db/test_sqlite.py` holds the two paths to the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, Select
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from kennel.db._plans import Plans, row_type, value_processors

__all__ = ["_Plan", "_plan_of", "plans"]

_DIALECT = SQLiteDialect_pysqlite()
_REQUIRED = object()


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


plans: Plans[_Plan] = Plans(lambda statement, _keys: _compile(statement))


def _plan_of(statement: Executable, params: Any) -> _Plan | None:
    """The plan of a SELECT run before as this very object, or None (SQLAlchemy runs it)."""
    if not isinstance(statement, Select) or isinstance(params, list):
        return None
    return plans.of(statement)


def _compile(statement: Executable) -> _Plan | None:
    assert isinstance(statement, Select)
    compiled = statement.compile(dialect=_DIALECT)
    binds = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        if bind.expanding:  # IN lists are rendered per execution
            return None
        fixed = _REQUIRED if bind.required or bind.callable else bind.effective_value
        binds.append((name, fixed, bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)))
    columns = list(statement.selected_columns)
    return _Plan(
        sql=compiled.string,
        binds=tuple(binds),
        row=row_type(column.key or "_" for column in columns),
        processors=value_processors(columns, _DIALECT),
    )
