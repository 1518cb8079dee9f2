"""Faults that are not bugs: the database or the disk failing for a while.

A request that meets one is answered `503` with `Retry-After` and the cause in words
(`The database is busy`, `The disk is full`, `The database is unavailable`), not `500` "this
is a bug": nothing is wrong with the request, and the same request later may well succeed.
With an `Idempotency-Key`, sending it again is safe whatever had been written.
"""

from __future__ import annotations

import errno
import sqlite3

from sqlalchemy import exc as sa_exc

from kennel.core.causes import causes

__all__ = ["RETRY_AFTER_SECONDS", "transient_cause"]

RETRY_AFTER_SECONDS = 5


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
