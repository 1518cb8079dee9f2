"""Declarative base, naming convention and the column types shared by every table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase

from kennel.timestamps import utcnow

__all__ = ["Base", "JsonValue", "NewRow", "UTCDateTime", "new_row", "utcnow"]


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use kennel.timestamps.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


JsonValue = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class NewRow(dict[str, Any]):
    """A new row's column values, to insert as they are and to read as attributes, like the
    rows of `kennel.reads` and the ORM's objects that render code also takes."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def new_row(model: type[Base], **values: Any) -> NewRow:
    """Every column of a new `model` row: the given values, else the column's Python-side
    default, else None: for Core inserts (`kennel.writes`). Building one costs about a
    microsecond, where a transient ORM object and its values cost 70 here, on paths that run
    on every request."""
    columns = _columns_of.get(model)
    if columns is None:
        columns = _columns_of[model] = tuple(
            (column.key, column.default) for column in model.__table__.columns
        )
    row = NewRow()
    for key, default in columns:
        if key in values:
            row[key] = values.pop(key)
        elif default is None:
            row[key] = None
        elif default.is_callable:
            row[key] = default.arg(None)  # type: ignore[attr-defined]
        else:
            row[key] = default.arg  # type: ignore[attr-defined]
    if values:
        raise TypeError(f"{model.__name__} has no columns {sorted(values)}")
    return row


_columns_of: dict[type[Base], tuple[tuple[str, Any], ...]] = {}
