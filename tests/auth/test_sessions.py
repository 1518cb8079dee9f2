"""Dashboard sessions: opened with a key, stored hashed, ended by idling, age, sign-out and
the key's revocation."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import text, update

from kennel.auth.service import revoke_key
from kennel.auth.sessions import (
    SESSION_MAX_SECONDS,
    csrf_matches,
    csrf_token,
    end_session,
    hash_session_id,
    session_caller,
    start_session,
)
from kennel.core.timestamps import utcnow
from kennel.models import dashboard_sessions
from tests.factories import make_member

IDLE = 3600


async def _stored(app: FastAPI, user_id: str) -> list[tuple[str, str]]:
    async with app.state.runtime.db.read() as r:
        rows = await r.all(
            text("SELECT id_hash, key_id FROM dashboard_sessions WHERE user_id = :u"),
            {"u": user_id},
        )
    return [(row[0], row[1]) for row in rows]


async def _last_seen(app: FastAPI, session_id: str, moment: datetime) -> None:
    """Set when the session was last used, as if it had been used then."""
    async with app.state.runtime.db.write() as w:
        await w.execute(
            update(dashboard_sessions)
            .where(dashboard_sessions.c.id_hash == hash_session_id(session_id))
            .values(last_seen_at=moment)
        )


class TestStartSession:
    async def test_a_valid_key_opens_a_session_stored_only_as_its_hash(self, app: FastAPI) -> None:
        member = await make_member(app)
        db = app.state.runtime.db
        started = await start_session(db, member.key, idle_seconds=IDLE)
        assert started is not None
        assert started.caller.user_id == member.user_id
        assert started.caller.organization_id == member.organization_id
        assert len(started.session_id) >= 43  # 256 random bits, URL-safe
        assert (started.expires_at - utcnow()).total_seconds() > SESSION_MAX_SECONDS - 60
        ((stored_hash, key_id),) = await _stored(app, member.user_id)
        assert stored_hash == hash_session_id(started.session_id)
        assert stored_hash != started.session_id
        assert key_id == started.caller.key_id
        assert await session_caller(db, started.session_id, idle_seconds=IDLE) == started.caller

    async def test_each_sign_in_is_its_own_session(self, app: FastAPI) -> None:
        member = await make_member(app)
        db = app.state.runtime.db
        first = await start_session(db, member.key, idle_seconds=IDLE)
        second = await start_session(db, member.key, idle_seconds=IDLE)
        assert first is not None
        assert second is not None
        assert first.session_id != second.session_id
        assert len(await _stored(app, member.user_id)) == 2

    async def test_unknown_revoked_and_malformed_keys_open_nothing(self, app: FastAPI) -> None:
        member = await make_member(app)
        db = app.state.runtime.db
        for key in ("knl_" + "x" * 43, "", "short", member.key + " ", "knl_\u00e9" * 10):
            assert await start_session(db, key, idle_seconds=IDLE) is None, key
        await revoke_key(db, member.key)
        assert await start_session(db, member.key, idle_seconds=IDLE) is None
        assert await _stored(app, member.user_id) == []

    async def test_signing_in_forgets_the_users_dead_sessions(self, app: FastAPI) -> None:
        member = await make_member(app)
        db = app.state.runtime.db
        long_ago = utcnow() - timedelta(days=2)
        old = await start_session(db, member.key, idle_seconds=IDLE, now=long_ago)
        assert old is not None
        await start_session(db, member.key, idle_seconds=IDLE)
        stored = {h for h, _ in await _stored(app, member.user_id)}
        assert hash_session_id(old.session_id) not in stored
        assert len(stored) == 1


class TestSessionCaller:
    async def test_idle_sessions_end(self, app: FastAPI) -> None:
        member = await make_member(app)
        db = app.state.runtime.db
        started = await start_session(db, member.key, idle_seconds=IDLE)
        assert started is not None
        soon = utcnow() + timedelta(seconds=IDLE - 60)
        assert await session_caller(db, started.session_id, idle_seconds=IDLE, now=soon)
        # That request counted as activity: the idle time runs from it.
        later = soon + timedelta(seconds=IDLE - 60)
        assert await session_caller(db, started.session_id, idle_seconds=IDLE, now=later)
        idle = later + timedelta(seconds=IDLE + 1)
        assert await session_caller(db, started.session_id, idle_seconds=IDLE, now=idle) is None

    async def test_activity_is_written_at_most_once_a_minute(self, app: FastAPI) -> None:
        member = await make_member(app)
        db = app.state.runtime.db
        began = utcnow()
        started = await start_session(db, member.key, idle_seconds=IDLE, now=began)
        assert started is not None

        async def last_seen() -> str:
            async with db.read() as r:
                return str(
                    await r.scalar(
                        text("SELECT last_seen_at FROM dashboard_sessions WHERE id_hash = :h"),
                        {"h": hash_session_id(started.session_id)},
                    )
                )

        at_start = await last_seen()
        moment = began + timedelta(seconds=30)
        await session_caller(db, started.session_id, idle_seconds=IDLE, now=moment)
        assert await last_seen() == at_start
        moment = began + timedelta(seconds=90)
        await session_caller(db, started.session_id, idle_seconds=IDLE, now=moment)
        assert await last_seen() != at_start

    async def test_no_session_outlives_its_maximum_age(self, app: FastAPI) -> None:
        member = await make_member(app)
        db = app.state.runtime.db
        began = utcnow()
        started = await start_session(db, member.key, idle_seconds=IDLE, now=began)
        assert started is not None
        # In use every 50 minutes for 29 days, it still ends 30 days after it began.
        for day in range(1, 30):
            moment = began + timedelta(days=day)
            await _last_seen(app, started.session_id, moment - timedelta(minutes=50))
            assert await session_caller(db, started.session_id, idle_seconds=IDLE, now=moment)
        moment = began + timedelta(seconds=SESSION_MAX_SECONDS + 1)
        await _last_seen(app, started.session_id, moment - timedelta(minutes=1))
        assert await session_caller(db, started.session_id, idle_seconds=IDLE, now=moment) is None

    async def test_sign_out_ends_the_session_at_once(self, app: FastAPI) -> None:
        member = await make_member(app)
        db = app.state.runtime.db
        started = await start_session(db, member.key, idle_seconds=IDLE)
        other = await start_session(db, member.key, idle_seconds=IDLE)
        assert started is not None
        assert other is not None
        await end_session(db, started.session_id)
        assert await session_caller(db, started.session_id, idle_seconds=IDLE) is None
        assert await session_caller(db, other.session_id, idle_seconds=IDLE) is not None

    async def test_revoking_the_key_ends_its_sessions(self, app: FastAPI) -> None:
        member = await make_member(app)
        db = app.state.runtime.db
        started = await start_session(db, member.key, idle_seconds=IDLE)
        assert started is not None
        assert await revoke_key(db, member.key) == "revoked"
        assert await session_caller(db, started.session_id, idle_seconds=IDLE) is None

    async def test_ids_that_are_not_ours_are_refused_without_a_query(self, app: FastAPI) -> None:
        db = app.state.runtime.db
        for bogus in ("", "x", "a" * 42, "a" * 44, "a" * 42 + "!", hash_session_id("x")):
            assert await session_caller(db, bogus, idle_seconds=IDLE) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    token = csrf_token("a" * 43)
    assert csrf_matches("a" * 43, token)
    assert not csrf_matches("b" * 43, token)
    assert not csrf_matches("a" * 43, None)
    assert not csrf_matches("a" * 43, "")
    assert token != hash_session_id("a" * 43)


async def test_the_migration_makes_the_declared_table(app: FastAPI) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from kennel.models import metadata

    settings = app.state.runtime.settings
    url = settings.database_url_object
    engine = create_engine(
        url.set(drivername="sqlite" if settings.is_sqlite else "postgresql+psycopg")
    )
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert [d for d in differences if "dashboard_sessions" in repr(d)] == []
