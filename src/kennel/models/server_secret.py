"""Secrets of the server itself, made at its first start and shared by every process."""

from __future__ import annotations

from sqlalchemy import Column, String, Table

from kennel.models.base import UTCDateTime, metadata, utcnow

__all__ = ["server_secrets"]

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(40), primary_key=True),
    # Read back on every start (it signs the sign-in form's token), so kept as is: anyone who
    # can read the database can sign in with a key anyway.
    Column("value", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)
