"""Dashboard sign-ins: a server-side session per browser, opened with an API key.

The browser holds only a random session id (256 bits) in a cookie; the database holds its
SHA-256. A session ends when it is signed out, after `idle_seconds` without a request, at most
`SESSION_MAX_SECONDS` after it began, and as soon as the API key that opened it is revoked
(every lookup joins the key). Forms carry a CSRF token derived from the session id, so a page
of another origin, which cannot read the cookie, cannot forge one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from kennel.auth import repository as repo
from kennel.auth.dependencies import Caller
from kennel.auth.keys import hash_key, key_matches, looks_like_key
from kennel.core.timestamps import utcnow
from kennel.db import Database

__all__ = [
    "SESSION_MAX_SECONDS",
    "StartedSession",
    "csrf_matches",
    "csrf_token",
    "end_session",
    "hash_session_id",
    "login_token",
    "login_token_valid",
    "server_secret",
    "session_caller",
    "start_session",
]

SESSION_MAX_SECONDS = 30 * 24 * 3600
# `last_seen_at` is written at most this often: a write per page view would take SQLite's only
# write lock on every click, for an idle timeout counted in hours.
_TOUCH_EVERY = timedelta(seconds=60)
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_CSRF_CONTEXT = b"kennel-dashboard-csrf"
LOGIN_TOKEN_SECONDS = 3600
_LOGIN_TOKEN = re.compile(r"(\d{1,12})\.([A-Za-z0-9_-]{22})\.([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class StartedSession:
    session_id: str  # goes into the cookie, never into the database
    caller: Caller
    expires_at: datetime


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token(session_id: str) -> str:
    """The CSRF token of a session: a MAC of its id, so nothing more is stored."""
    return hmac.new(session_id.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_matches(session_id: str, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(csrf_token(session_id), submitted or "")


async def server_secret(db: Database, name: str = "login") -> bytes:
    """The server's secret of that name, made at the first start; every process reads the
    same one, so a form one process issued is checked by any other."""
    async with db.read(snapshot=False) as r:
        found = await repo.server_secret(r, name)
    if found is None:
        try:
            async with db.write() as w:
                await repo.insert_server_secret(w, name, secrets.token_urlsafe(48))
        except IntegrityError:  # another process made it first
            pass
        async with db.read(snapshot=False) as r:
            found = await repo.server_secret(r, name)
    assert found is not None
    return found.encode()


def login_token(secret: bytes, *, now: float | None = None) -> str:
    """A sign-in form's CSRF token: when it was issued, a nonce, and the server's MAC of both.

    Only this server can make one, so a token planted in a cookie by a page of another port
    or subdomain (cookies ignore ports) is worthless unless the server issued it."""
    issued = str(int(time.time() if now is None else now))
    nonce = secrets.token_urlsafe(16)
    return f"{issued}.{nonce}.{_login_mac(secret, issued, nonce)}"


def login_token_valid(secret: bytes, token: str, *, now: float | None = None) -> bool:
    found = _LOGIN_TOKEN.fullmatch(token)
    if found is None:
        return False
    issued, nonce, mac = found.groups()
    age = (time.time() if now is None else now) - int(issued)
    if not 0 <= age <= LOGIN_TOKEN_SECONDS + 60:  # a minute of clock skew between processes
        return False
    return hmac.compare_digest(_login_mac(secret, issued, nonce), mac)


def _login_mac(secret: bytes, issued: str, nonce: str) -> str:
    return hmac.new(secret, f"login|{issued}|{nonce}".encode(), hashlib.sha256).hexdigest()


async def start_session(
    db: Database, key: str, *, idle_seconds: int, now: datetime | None = None
) -> StartedSession | None:
    """A new session for the owner of an active key; None for any other key."""
    if not looks_like_key(key):
        return None
    now = now or utcnow()
    idle_since = now - timedelta(seconds=idle_seconds)
    session_id = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=SESSION_MAX_SECONDS)
    async with db.write() as w:
        owner = await repo.owner_of_key(w, hash_key(key))
        if owner is None or not key_matches(key, owner.key_hash):
            return None
        await repo.delete_stale_sessions(w, owner.user_id, now=now, idle_since=idle_since)
        row = repo.SessionRow(
            hash_session_id(session_id), owner.user_id, owner.key_id, now, now, expires_at
        )
        await repo.insert_session(w, row)
    caller = Caller(owner.user_id, owner.organization_id, owner.role, owner.key_id)
    return StartedSession(session_id, caller, expires_at)


async def session_caller(
    db: Database, session_id: str, *, idle_seconds: int, now: datetime | None = None
) -> Caller | None:
    """Who a live session acts as, or None (unknown, signed out, idle, expired, key revoked)."""
    if not _SESSION_ID.fullmatch(session_id):
        return None
    now = now or utcnow()
    id_hash = hash_session_id(session_id)
    idle_since = now - timedelta(seconds=idle_seconds)
    async with db.read(snapshot=False) as r:
        owner = await repo.session_owner(r, id_hash, now=now, idle_since=idle_since)
    if owner is None:
        return None
    if now - owner.last_seen_at >= _TOUCH_EVERY:
        async with db.write() as w:
            await repo.touch_session(w, id_hash, now)
    return Caller(owner.user_id, owner.organization_id, owner.role, owner.key_id)


async def end_session(db: Database, session_id: str) -> None:
    """Sign out: the session id stops working at once."""
    if _SESSION_ID.fullmatch(session_id):
        async with db.write() as w:
            await repo.delete_session(w, hash_session_id(session_id))
