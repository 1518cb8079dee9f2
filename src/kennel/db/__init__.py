"""The one way to the database: `async with db.read() as r` and `async with db.write() as w`.

Statements are SQLAlchemy Core, built in the domains' repositories and nowhere else; a
repository function takes the handle as its first argument and returns typed rows:

    async with db.read() as r:                  # statements that see one state
        worker = await workers_repo.visible(r, caller, worker_id)
    async with db.write() as w:                 # one short transaction: commits at the end
        await workers_repo.rename(w, worker.id, title)   # of the block, rolls back on error

Rules that keep both backends fast and free of deadlocks:
- A service opens the transactions, one short one per use case, and awaits nothing inside a
  write block but its statements: never a model call, a file write or an outbound request.
  On SQLite the block holds the database's only write lock.
- A `write()` inside a `write()` of the same task joins it (it commits with the outer one),
  and a `read()` inside a `write()` reads through it, so code that reads and then writes, or
  calls another service that writes, can never wait on a lock its own task holds.
- `read(snapshot=False)` runs each statement on its own: cheaper on PostgreSQL (no BEGIN and
  ROLLBACK round trips) for a block of a single statement.

Errors are SQLAlchemy's on both backends (`sqlalchemy.exc.IntegrityError` for a constraint).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Executable, FromClause, Select, select, text
from sqlalchemy.sql.elements import KeyedColumnElement

from kennel.core.settings import Settings

__all__ = [
    "Database",
    "Params",
    "Read",
    "Write",
    "head_revision",
    "migrate",
    "open_database",
    "row_columns",
    "schema_revision",
    "select_rows",
]

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
R = TypeVar("R", bound=NamedTuple)

_MIGRATIONS = Path(__file__).parent.parent / "migrations"


class Read(Protocol):
    """Statements that see one state of the database."""

    async def first(self, statement: Executable, params: Params = None) -> Any | None:
        """The first row, or None."""

    async def all(self, statement: Executable, params: Params = None) -> Sequence[Any]:
        """Every row."""

    async def scalar(self, statement: Executable, params: Params = None) -> Any:
        """The first column of the first row, or None."""


class Write(Read, Protocol):
    """Reads (RETURNING included) and writes that commit together."""

    async def execute(self, statement: Executable, params: Params = None) -> int:
        """Run an INSERT, UPDATE or DELETE (a list of parameters: once per item); rows matched."""


class Database(Protocol):
    """The app's database; `open_database` picks the backend from the settings."""

    backend: str  # "sqlite" or "postgresql"

    def read(self, *, snapshot: bool = True) -> AbstractAsyncContextManager[Read]: ...

    def write(self) -> AbstractAsyncContextManager[Write]: ...

    async def dispose(self) -> None: ...


def open_database(settings: Settings, *, connections: int | None = None) -> Database:
    """The configured database, not yet migrated (`migrate` does that). `connections`: the
    most it may hold on PostgreSQL, by default the HTTP loop's share of the budget."""
    url = settings.database_url_object
    if settings.is_sqlite:
        from kennel.db.sqlite import SqliteDatabase

        return SqliteDatabase(url.database or "")
    from kennel.db.postgres import PostgresDatabase

    return PostgresDatabase(url, max_connections=connections or settings.connection_shares.http)


def row_columns(row_type: type[R], table: FromClause) -> list[KeyedColumnElement[Any]]:
    """The table's columns in the order of the row type's fields, so `row_type._make` fits."""
    return [table.c[name] for name in row_type._fields]


def select_rows(row_type: type[R], table: FromClause) -> Select[Any]:
    """`SELECT` of the row type's columns from `table`."""
    return select(*row_columns(row_type, table))


def migrate(settings: Settings, revision: str = "head", *, create_sqlite: bool = True) -> None:
    """Bring the database schema up to `revision` (blocking; run it in a thread from async code).
    A missing PostgreSQL database is an error (`kennel db upgrade --create-database` makes it);
    a missing SQLite file is made unless `create_sqlite` is False."""
    from kennel.db.setup import ensure_database

    ensure_database(settings, create_sqlite=create_sqlite)
    url = settings.database_url_object
    if settings.is_sqlite:
        sync_url = url.set(drivername="sqlite")
    else:
        sync_url = url.set(drivername="postgresql+psycopg")
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["url"] = sync_url.render_as_string(hide_password=False)
    command.upgrade(config, revision)


@functools.cache
def head_revision() -> str:
    """The newest migration this code has (read from the migration files once a process)."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, "Kennel has migrations"
    return head


async def schema_revision(db: Database) -> str | None:
    """The migration the database is at (None: never migrated)."""
    async with db.read(snapshot=False) as r:
        found = await r.scalar(text("SELECT version_num FROM alembic_version"))
    return None if found is None else str(found)
