"""The database or the disk failing for a while is a 503 with its cause and Retry-After, not a
500 "this is a bug" (issue 25, item 5)."""

from __future__ import annotations

import errno
import sqlite3

import httpx
import pytest
from sqlalchemy import exc as sa_exc

from kennel.api.unavailable import transient_cause
from kennel.db import sqlite as sqlite_db
from tests.factories import Member


def _sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]  # set by the driver, here by hand
    return error


class TestCauses:
    @pytest.mark.parametrize(
        ("error", "cause"),
        [
            (OSError(errno.ENOSPC, "No space left on device"), "The disk is full"),
            (_sqlite_error("database or disk is full", sqlite3.SQLITE_FULL), "The disk is full"),
            (_sqlite_error("database is locked", sqlite3.SQLITE_BUSY), "The database is busy"),
        ],
    )
    def test_a_passing_fault_is_named(self, error: BaseException, cause: str) -> None:
        wrapped = sa_exc.DBAPIError.instance("INSERT", None, error, sqlite3.Error)
        for raised in (error, wrapped):
            found = transient_cause(raised)
            assert found is not None
            assert found.startswith(cause)

    def test_a_lost_connection_is_named(self) -> None:
        lost = sa_exc.OperationalError("SELECT 1", None, ConnectionResetError("reset"))
        assert transient_cause(lost) == "The database is unavailable"
        invalidated = sa_exc.DBAPIError(
            "SELECT 1", None, ConnectionResetError("reset"), connection_invalidated=True
        )
        assert transient_cause(invalidated) == (
            "The database is unavailable (its connection was lost)"
        )

    @pytest.mark.parametrize(
        "error",
        [
            KeyError("x"),
            ValueError("bad"),
            OSError(errno.EACCES, "Permission denied"),
            sa_exc.IntegrityError("INSERT", None, sqlite3.IntegrityError("UNIQUE")),
            ConnectionResetError("a model provider, not the database"),
        ],
    )
    def test_a_bug_is_not_called_a_passing_fault(self, error: BaseException) -> None:
        assert transient_cause(error) is None


async def test_a_database_locked_past_the_busy_timeout_is_a_503_with_its_cause(
    client: httpx.AsyncClient, member: Member, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds SQLite's write lock longer than Kennel waits for it."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock")
    monkeypatch.setattr(sqlite_db, "_BUSY_TIMEOUT_SECONDS", 0.5)
    holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, as another process would hold it
        r = await client.post("/api/workers", json={"title": "Blocked"}, headers=member.headers)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        error = r.json()["error"]
        assert error["type"] == "service_unavailable"
        assert error["message"].startswith("The database is busy")
        assert "bug" not in error["message"]
    finally:
        holder.rollback()
        holder.close()
    r = await client.post("/api/workers", json={"title": "Free"}, headers=member.headers)
    assert r.status_code == 201, r.text
    titles = [
        w["title"]
        for w in (await client.get("/api/workers", headers=member.headers)).json()["workers"]
    ]
    assert titles == ["Free"]  # the refused request wrote nothing
