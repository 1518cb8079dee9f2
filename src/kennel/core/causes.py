"""Walking an error's causes: the one way the code base reads what an error came from, and
whether it is a passing fault of the database or the disk (retried, or answered 503)."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

__all__ = ["causes", "is_transient", "transient_cause"]


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it was raised from (or while handling), each once; an error wrapping a
    driver's own (SQLAlchemy's `.orig`) is followed by it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and id(orig) not in seen:
            seen.add(id(orig))
            yield orig
        current = current.__cause__ or current.__context__


def transient_cause(exc: BaseException) -> str | None:
    """What a passing fault in `exc`'s chain is, in a sentence; None when it is none. The
    driver's own error (deeper in the chain) says more than SQLAlchemy's wrapper, so it is
    looked for first."""
    chain = list(causes(exc))
    for cause in chain:
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return "The disk is full"
        if isinstance(cause, sqlite3.Error):
            code = getattr(cause, "sqlite_errorcode", 0) & 0xFF
            if code == sqlite3.SQLITE_FULL:
                return "The disk is full"
            if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(cause):
                return "The database is busy (another process holds its write lock)"
            if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
                return "The database cannot be read or written"
    from_database = any(isinstance(c, sa_exc.SQLAlchemyError) for c in chain)
    for cause in chain:
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return "The database is unavailable (its connection was lost)"
        if isinstance(cause, sa_exc.OperationalError | sa_exc.TimeoutError):
            return "The database is unavailable"
        if isinstance(cause, ConnectionError | TimeoutError) and from_database:
            return "The database is unavailable"
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is a passing fault of the database or the disk, worth trying again."""
    return transient_cause(exc) is not None
