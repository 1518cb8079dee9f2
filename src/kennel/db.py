"""Engines, the per-request unit of work, and migrations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from alembic import command
from alembic.config import Config
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from kennel import sqlite_driver
from kennel.reads import EngineReader, Reader, SqliteReader
from kennel.settings import Settings
from kennel.writes import EngineWriter, SqliteWriter, Writer

__all__ = ["Database", "SessionDep", "migrate", "sync_migration_url"]

log = logging.getLogger("kennel.db")

_MIGRATIONS = Path(__file__).parent / "migrations"
_BUSY_TIMEOUT_SECONDS = 30.0
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Database:
    """The app's engines: SQLite gets a second engine whose transactions take the write lock."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    write_sessions: async_sessionmaker[AsyncSession]
    reader: Reader  # Core reads outside the ORM, for the hottest paths (kennel.reads)
    writer: Writer  # and short write transactions (kennel.writes)

    @classmethod
    def open(cls, settings: Settings) -> Database:
        url = settings.async_database_url
        if not settings.is_sqlite:
            engine = create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            maker = async_sessionmaker(engine, expire_on_commit=False)
            return cls(engine, maker, maker, EngineReader(engine), EngineWriter(engine))
        Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
        reader = _sqlite_engine(url, immediate=False)
        # Why: a deferred transaction that reads and then writes fails at once with
        # SQLITE_BUSY when another writer committed in between; BEGIN IMMEDIATE waits.
        writer = _sqlite_engine(url, immediate=True)
        return cls(
            reader,
            async_sessionmaker(reader, expire_on_commit=False),
            async_sessionmaker(writer, expire_on_commit=False),
            SqliteReader(url.database or "", busy_timeout=_BUSY_TIMEOUT_SECONDS),
            SqliteWriter(url.database or "", busy_timeout=_BUSY_TIMEOUT_SECONDS),
        )

    def session(self, *, write: bool = True) -> AsyncSession:
        return (self.write_sessions if write else self.sessions)()

    async def dispose(self) -> None:
        await self.reader.dispose()
        await self.writer.dispose()
        await self.engine.dispose()
        write_engine = self.write_sessions.kw["bind"]
        if write_engine is not self.engine:
            await write_engine.dispose()


def _sqlite_engine(url: Any, *, immediate: bool) -> AsyncEngine:
    # Statements run on the event loop (kennel.sqlite_driver), which also begins transactions
    # and waits for locks. No rollback on check-in: sessions end their transactions themselves.
    path = url.database or ""
    return create_async_engine(
        url,
        async_creator=lambda: sqlite_driver.connect(
            path, immediate=immediate, busy_timeout=_BUSY_TIMEOUT_SECONDS
        ),
        pool_reset_on_return=None,
        # A connection is a file handle: keep enough that concurrent requests never open one.
        pool_size=32,
        max_overflow=64,
    )


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: commit when the endpoint returns, roll back on error."""
    db: Database = request.app.state.db
    async with db.session(write=request.method not in _READ_METHODS) as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function": the commit ends before the response is sent. FastAPI's default ("request")
# commits after the client already has its answer, so a 201 could precede a failed commit and a
# client's next request could miss the row it was just told exists.
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]


def sync_migration_url(settings: Settings) -> str:
    """The database URL with the synchronous driver Alembic runs on."""
    url = settings.async_database_url
    driver = "sqlite" if settings.is_sqlite else "postgresql+psycopg"
    return url.set(drivername=driver).render_as_string(hide_password=False)


def migrate(settings: Settings, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (blocking; run it in a thread from async code)."""
    if settings.is_sqlite:
        Path(settings.async_database_url.database or "").parent.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["url"] = sync_migration_url(settings)
    command.upgrade(config, revision)
