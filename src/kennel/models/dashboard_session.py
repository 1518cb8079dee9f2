"""Signed-in browsers of the dashboard: one row per session, found by the hash of its id."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table

from kennel.models.base import UTCDateTime, metadata, utcnow

__all__ = ["dashboard_sessions"]

dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    # SHA-256 of the random id the cookie carries (256 bits, so a plain hash is enough); the id
    # itself is never stored, so a copy of the database signs no one in.
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False),
    # The key that signed in: revoking it ends the session (checked on every request).
    Column("key_id", ForeignKey("api_keys.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("last_seen_at", UTCDateTime, nullable=False, default=utcnow),
    # The absolute end, however active the browser is.
    Column("expires_at", UTCDateTime, nullable=False),
)
