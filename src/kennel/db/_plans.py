"""Statements compiled once by SQLAlchemy and run on the driver: a private detail of the
backends (`db.sqlite` runs its hot SELECTs this way, `db.postgres` every statement).

Measured here, SQLAlchemy's execution cost 28 us of CPU per one-row SELECT on a held SQLite
connection against 6 us for the same SQL sent to `sqlite3`, and on PostgreSQL 166 us against
62 us sent to asyncpg; a request runs three or four. Most of the difference is per-execution
bookkeeping (execution context, parameter processing, result metadata), so a statement is
compiled with SQLAlchemy's own compiler once, and its values are converted by the very type
processors SQLAlchemy would use.

Plans are kept for statement objects executed a second time (the module constants that
repositories build once), keyed by the object itself; a statement built per call is compiled
for that call only.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Executable

__all__ = ["Plans", "row_type", "value_processors"]

P = TypeVar("P")
_MAX_PLANS = 2048
_MAX_SEEN = 4096


class Plans(Generic[P]):
    """The plans of statements seen before, made by `compile` (None: no plan for this one)."""

    def __init__(self, compile: Callable[[Executable, tuple[str, ...]], P | None]) -> None:
        self._compile = compile
        self.kept: dict[Hashable, tuple[Executable, P | None]] = {}
        self._seen: dict[Hashable, Executable] = {}

    def of(self, statement: Executable, keys: tuple[str, ...] = ()) -> P | None:
        """The kept plan of `statement` run with parameters named `keys` (an INSERT's columns
        are the parameters it is given); None the first time it is seen, or if it has none."""
        key = (id(statement), keys) if keys else id(statement)
        kept = self.kept.get(key)
        if kept is not None and kept[0] is statement:
            return kept[1]
        if self._seen.get(key) is not statement:  # the first time: built per call, maybe
            if len(self._seen) >= _MAX_SEEN:
                self._seen.clear()
            self._seen[key] = statement  # held, so that its id is not reused while here
            return None
        plan = self._compile(statement, keys)
        if len(self.kept) < _MAX_PLANS:
            self.kept[key] = (statement, plan)
        return plan


def row_type(names: Iterable[str]) -> Any:
    """A named tuple type for rows of these columns, named as in SQLAlchemy's rows (a repeated
    name gets a suffix: id, id_1)."""
    unique: list[str] = []
    for name in names:
        candidate, n = name or "_", 0
        while candidate in unique:
            n += 1
            candidate = f"{name}_{n}"
        unique.append(candidate)
    return namedtuple("Row", unique, rename=True)


def value_processors(
    columns: Iterable[ColumnElement[Any]], dialect: Any
) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    """(index, result processor) of each column whose values SQLAlchemy converts."""
    processors = []
    for index, column in enumerate(columns):
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            processors.append((index, process))
    return tuple(processors)
