"""Organizations, their users and the API keys that act as those users."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, String, Table, UniqueConstraint

from kennel.models.base import UTCDateTime, metadata, utcnow

__all__ = ["api_keys", "organizations", "users"]

organizations = Table(
    "organizations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), unique=True, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "organization_id",
        ForeignKey("organizations.id", ondelete="CASCADE"),
        index=True,
        nullable=False,
    ),
    Column("email", String(320), nullable=False),
    Column("role", String(20), nullable=False, default="member"),  # "admin" | "member"
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("organization_id", "email"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False),
    # SHA-256 of the whole key: keys carry 256 random bits, so a plain hash is enough.
    Column("key_hash", String(64), unique=True, nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("revoked_at", UTCDateTime, nullable=True),
)
